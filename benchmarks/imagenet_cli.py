"""The ImageNet-shaped command line end to end: the default (``--preset auto``) and the official
ImageNet settings (``--preset imagenet``) on files of ImageNet-1000's size, as a user runs them.

    python benchmarks/imagenet_cli.py --out DIR                     # n = 1,281,167, k = 1000 (a GPU)
    python benchmarks/imagenet_cli.py --out DIR --n 30000 --k 20 --d1 64 --d2 48 --budget 30   # a smoke run

Writes a two-view Gaussian mixture (k classes; d1 = 2048 and d2 = 1536 as a ResNet-50 and a
ViT-L; class means drawn independently per view) as float32 ``.npy`` files in DIR, generated on the
default device in row blocks straight into memory-mapped files (the host never holds a whole view),
then times each command in a child process: wall and CPU seconds, and, when it finished, the
run's metrics.json (ACC on the val split, sizes found). The inputs are memory-mapped
by the command line (``hume_jax.io.data.load_array``). The official settings' CV score is
scikit-learn's, exactly as the official ``evaluate.py``: ``--official-val`` rows keep it short.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

BLOCK = 65_536


def write_mixture(folder: str, name: str, n: int, k: int, dims: tuple[int, int], seed: int) -> None:
  """``{name}_phi1.npy [n, d1]``, ``{name}_phi2.npy [n, d2]`` and ``{name}_labels.npy [n]`` in ``folder``."""
  key_means = jax.random.PRNGKey(0)  # the same class means for every split
  means = [1.5 * jax.random.normal(k_, (k, d)) / np.sqrt(d / 64) for k_, d in zip(jax.random.split(key_means), dims)]
  key = jax.random.PRNGKey(seed)
  labels = np.asarray(jax.random.randint(key, (n,), 0, k))
  np.save(os.path.join(folder, f"{name}_labels.npy"), labels)
  for view, (d, m) in enumerate(zip(dims, means), start=1):
    out = np.lib.format.open_memmap(os.path.join(folder, f"{name}_phi{view}.npy"), "w+", np.float32, (n, d))
    for i in range(0, n, BLOCK):
      noise = jax.random.normal(jax.random.fold_in(key, view * 1_000_003 + i), (min(BLOCK, n - i), d))
      out[i : i + len(noise)] = np.asarray(m[jnp.asarray(labels[i : i + BLOCK])] + noise)
    out.flush()
    del out


def run(command: list[str], limit: int) -> dict:
  """Runs ``command`` with a time limit: exit status, wall and CPU seconds (of the child)."""
  before = resource.getrusage(resource.RUSAGE_CHILDREN)
  start = time.perf_counter()
  print("$", " ".join(command), flush=True)
  try:
    rc = subprocess.run(command, timeout=limit).returncode
  except subprocess.TimeoutExpired:
    rc = "timeout"
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
  return {"rc": rc, "wall": time.perf_counter() - start, "cpu": cpu}


def summary(out: str) -> dict:
  """The figures of a finished run's metrics.json (empty when it did not finish)."""
  path = os.path.join(out, "metrics.json")
  if not os.path.exists(path):
    return {}
  m = json.load(open(path))
  val = m.get("splits", {}).get("val", {})
  keys = ("acc", "nmi", "ari")
  return {
    "cv_score": m.get("cv_score"),
    "val": {key: val[key] for key in keys if key in val},
    "non_empty": val.get("nonempty_classes"),
    "smallest_class": val.get("smallest_class"),
    "train_seconds": m.get("train_seconds"),
  }


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--out", required=True, help="folder for the data, the runs and imagenet_cli.json")
  p.add_argument("--n", type=int, default=1_281_167, help="training rows (ImageNet-1000's train split)")
  p.add_argument("--val", type=int, default=50_000, help="val rows of the default run")
  p.add_argument("--official-val", type=int, default=10_000, help="val rows of the official run (its CV score)")
  p.add_argument("--k", type=int, default=1000)
  p.add_argument("--d1", type=int, default=2048)
  p.add_argument("--d2", type=int, default=1536)
  p.add_argument("--budget", type=int, default=120, help="--budget of the default run")
  p.add_argument("--official-iters", type=int, default=2, help="--num-iters of the official run")
  p.add_argument("--limit", type=int, default=270, help="seconds each command may take")
  p.add_argument("--skip", default="", help="comma-separated runs to skip: auto, official")
  a = p.parse_args()
  os.makedirs(a.out, exist_ok=True)
  data = os.path.join(a.out, "data")
  os.makedirs(data, exist_ok=True)
  record = {"machine": platform.machine(), "device": str(jax.devices()[0]), "jax": jax.__version__, "args": vars(a)}
  t = time.perf_counter()
  write_mixture(data, "train", a.n, a.k, (a.d1, a.d2), 1)
  write_mixture(data, "val", a.val, a.k, (a.d1, a.d2), 2)
  record["write_seconds"] = time.perf_counter() - t
  print(f"data written in {record['write_seconds']:.1f} s", flush=True)
  f = lambda split, what: os.path.join(data, f"{split}_{what}.npy")
  common = ["--phi1", f("train", "phi1"), "--phi2", f("train", "phi2"), "--labels", f("train", "labels")]
  common += ["--k", str(a.k), "--no-plots", "--no-baselines", "--overwrite"]
  val = ["--phi1-val", f("val", "phi1"), "--phi2-val", f("val", "phi2"), "--labels-val", f("val", "labels")]
  cli = [sys.executable, "-m", "hume_jax.train"]
  runs = {
    "auto": cli + common + val + ["--budget", str(a.budget), "--out", os.path.join(a.out, "auto")],
    "official": None,
  }
  if "official" not in a.skip:
    rows = a.official_val
    for what in ("phi1", "phi2", "labels"):  # the official run's val split: the first rows of val
      np.save(f("oval", what), np.load(f("val", what), mmap_mode="r")[:rows])
    oval = ["--phi1-val", f("oval", "phi1"), "--phi2-val", f("oval", "phi2"), "--labels-val", f("oval", "labels")]
    runs["official"] = cli + common + oval + ["--preset", "imagenet", "--num-iters", str(a.official_iters)]
    runs["official"] += ["--out", os.path.join(a.out, "official")]
  for name, command in runs.items():
    if command is None or name in a.skip.split(","):
      continue
    record[name] = run(command, a.limit)
    if record[name]["rc"] == 0:  # a run that failed leaves the previous run's results in place: not its own
      record[name] |= summary(os.path.join(a.out, name))
    print(name, json.dumps(record[name]), flush=True)
    json.dump(record, open(os.path.join(a.out, "imagenet_cli.json"), "w"), indent=1)


if __name__ == "__main__":
  main()
