#!/usr/bin/env bash
# CIFAR-10 from the images, as the paper runs it: two ImageNet representations extracted with
# python -m extract_torch (a stratified 10,000 of the 50,000 training images, all 10,000 test
# images), then HUME in the inductive setting (fit on train, report test) and the transductive
# one (train + test together), the official protocol's seeds + best CV + vote, TURTLE mode, and
# the baselines every run prints (k-means on each space and on both, the supervised probe).
#
#   tar -xzf cifar10-jpeg.tar.gz -C data     # cifar10/{train,test}/<class>/NNNN.jpg
#   bash benchmarks/cifar10.sh data/cifar10 runs/cifar10 [PHI1_MODEL PHI2_MODEL]
#
# Each command's wall and CPU time go to OUT/times.txt; every run's metrics.json to OUT/<run>/.
set -euo pipefail
data=${1:?usage: cifar10.sh CIFAR10_DIR OUT_DIR [PHI1_MODEL PHI2_MODEL]}
out=${2:?usage: cifar10.sh CIFAR10_DIR OUT_DIR [PHI1_MODEL PHI2_MODEL]}
m1=${3:-open_nsfw}
m2=${4:-efficientnet_lite0}
mkdir -p "$out/features"
timed() {  # timed NAME COMMAND...: runs it unless its output exists, appends its times to OUT/times.txt
  local name=$1
  shift
  if [ -e "$out/$name" ]; then echo "$name: done before"; return; fi
  /usr/bin/time -f "$name: %e s wall, %U s user, %S s system" -a -o "$out/times.txt" "$@"
}
for split in train test; do
  subset=()
  [ "$split" = train ] && subset=(--per-class 1000)
  for m in "$m1" "$m2"; do
    timed "features/${split}_$m.npz" python -m extract_torch --dataset "folder:$data/$split" --model "$m" \
      "${subset[@]}" --out "$out/features/${split}_$m.npz" --quiet
  done
done
f="$out/features"
inputs=(--phi1 "$f/train_$m1.npz" --phi2 "$f/train_$m2.npz" --labels "$f/train_$m1.npz"
        --phi1-val "$f/test_$m1.npz" --phi2-val "$f/test_$m2.npz" --labels-val "$f/test_$m1.npz" --k 10 --quiet)
timed auto_inductive python -m hume_jax.train "${inputs[@]}" --out "$out/auto_inductive"
timed auto_transductive python -m hume_jax.train "${inputs[@]}" --setting transductive --out "$out/auto_transductive"
timed auto_seeds5 python -m hume_jax.train "${inputs[@]}" --seeds 5 --out "$out/auto_seeds5"
timed turtle python -m hume_jax.train "${inputs[@]}" --method turtle --out "$out/turtle"
cat "$out/times.txt"
