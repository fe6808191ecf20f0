"""Extract the features of a dataset split with a pretrained model.

    python -m extract_torch --dataset folder:my_images --model dinov2_vitb14 --out dino.npz
    python -m extract_torch --dataset tfds:cifar10 --split test --model clip_vit_l14 --out clip_test.npz
    python -m extract_torch --dataset cifar100-20:data --split train+test --model moco_v2_resnet50 \\
        --weights my_moco.pth.tar --out moco_traintest.npz --official-layout hume_data --layout-name cifar20 --l2

Writes OUT (.npz): ``features`` float32 [n, dim], ``indices``, ``labels`` (when the dataset
has them) and ``meta`` (JSON: dataset, split, model, weights, preprocessing, versions).
``python -m hume_jax.train --phi1 A.npz --phi2 B.npz --labels A.npz:labels`` reads them.
The run is written in chunks to OUT.partial; after an interruption, rerun the same
command with --resume. OUT appears only when every image is done.
"""

from __future__ import annotations

import argparse
import os
import sys

from extract_torch.datasets import DATASET_KINDS
from extract_torch.models import MODELS


def _epilog() -> str:
    lines = ["models (--model):"]
    for name, spec in MODELS.items():
        lines.append(f"  {name:26s} {spec.dim:5d}-d  {spec.feature}")
    lines.append(f"  {'timm:NAME':26s}        any timm model (pip install timm); pooled features")
    lines.append("")
    lines.append("dataset kinds (--dataset):")
    lines += [f"  {v}" for v in DATASET_KINDS.values()]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m extract_torch", description=__doc__, epilog=_epilog(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("what to extract")
    g.add_argument("--dataset", required=True, metavar="SPEC",
                   help="the images, as KIND:ARG (kinds listed below)")
    g.add_argument("--split", default="train",
                   help="split to read (default train); join splits with + (train+test = HUME's traintest). "
                        "Ignored by folder: and npy:, which hold one set of images")
    g.add_argument("--model", required=True, metavar="NAME", help="registered model (listed below) or timm:NAME")
    g.add_argument("--weights", default=None, metavar="FILE",
                   help="local checkpoint (state dict, training checkpoint, TorchScript or .safetensors) "
                        "instead of downloading the authors' weights; 'random' for random weights")
    g.add_argument("--image-size", type=int, default=None, metavar="PX",
                   help="input size in px (default: the model authors' size, 224 for most)")
    g.add_argument("--data-dir", default=None, help="tfds: where the prepared dataset lives (tfds' data_dir)")
    g.add_argument("--label-key", default=None,
                   help="tfds: feature holding the labels (default 'label'; e.g. coarse_label for CIFAR-100-20)")
    g.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N images (a quick look)")
    g.add_argument("--per-class", type=int, default=None, metavar="N",
                   help="a stratified subset: the first N images of each class, in the split's order (needs "
                        "labels; e.g. 500 of CIFAR-10's 5,000 training images per class). `indices` in the output "
                        "are the images' places in the full split")
    g = p.add_argument_group("output")
    g.add_argument("--out", required=True, metavar="FILE.npz", help="output file")
    g.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    g.add_argument("--resume", action="store_true", help="continue an interrupted run from OUT.partial")
    g.add_argument("--chunk-size", type=int, default=4096, metavar="N",
                   help="images per checkpointed chunk (default 4096, rounded up to a multiple of --batch-size)")
    g.add_argument("--official-layout", default=None, metavar="ROOT",
                   help="also write the original HUME code's files: ROOT/representations/MODEL/NAMESPLIT.npy "
                        "and ROOT/labels/NAMESPLIT_targets.npy")
    g.add_argument("--layout-name", default=None, metavar="NAME",
                   help="dataset name in the official file names (default: from --dataset)")
    g.add_argument("--l2", action="store_true",
                   help="with --official-layout: also write NAMESPLIT_l2.npy, rows L2-normalised (for phi1)")
    g = p.add_argument_group("how to run")
    g.add_argument("--device", default="auto", help="cuda, mps, cpu or auto (default: the first available)")
    g.add_argument("--half", action="store_true", help="float16 inference (GPU only)")
    g.add_argument("--batch-size", type=int, default=None,
                   help="images per forward pass (default: 16 on the CPU, where larger batches' activations "
                        "outgrow the caches, 64 on a GPU)")
    g.add_argument("--workers", default="auto",
                   help="DataLoader processes that read and preprocess images (default auto: 0 on the CPU, "
                        "where the model uses every core; min(8, cores) on a GPU)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _layout_name(dataset: str) -> str:
    kind, _, arg = dataset.partition(":")
    if kind == "tfds":
        return arg.split("/")[0].split(":")[0]
    if kind in ("folder", "npy"):
        return os.path.splitext(os.path.basename(os.path.normpath(arg)))[0]
    return kind.replace("-", "")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from extract_torch.datasets import open_dataset
    from extract_torch.extract import check_output, run_extraction, write_official_layout
    from extract_torch.models import build_model, pick_device

    # Every check that needs no compute comes first, so that bad input loses nothing.
    try:
        check_output(args.out, args.overwrite)
    except (ValueError, FileExistsError) as e:
        raise SystemExit(f"error: {e}") from None
    if args.l2 and not args.official_layout:
        raise SystemExit("error: --l2 only applies with --official-layout")
    device = pick_device(args.device)
    batch_size = args.batch_size or (16 if device == "cpu" else 64)
    if args.workers == "auto":
        workers = 0 if device == "cpu" else min(8, os.cpu_count() or 1)
    else:
        try:
            workers = int(args.workers)
        except ValueError:
            raise SystemExit(f"error: --workers: expected an integer or 'auto', got {args.workers!r}") from None
    try:
        source = open_dataset(args.dataset, args.split, data_dir=args.data_dir, label_key=args.label_key)
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
        extractor = build_model(args.model, weights=args.weights, image_size=args.image_size,
                                device=device, half=args.half)
        print(f"{source.name}: {len(source)} images{' with labels' if source.labels is not None else ''}; "
              f"{args.model} ({extractor.dim}-d) on {device}{' in float16' if args.half else ''}, "
              f"{workers} workers", file=sys.stderr)
        arrays = run_extraction(source, extractor, args.out, dataset=args.dataset, split=args.split,
                                batch_size=batch_size, chunk_size=args.chunk_size, workers=workers,
                                resume=args.resume, overwrite=args.overwrite, progress=not args.quiet,
                                subset=", then ".join(subset) or None)
    except KeyboardInterrupt:
        print(f"\ninterrupted; the chunks done are kept in {args.out}.partial. Continue with:\n  "
              + " ".join(["python -m extract_torch"] + [a for a in (argv or sys.argv[1:]) if a != "--resume"]
                         + ["--resume"]), file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError, KeyError, ImportError, RuntimeError,
            FloatingPointError) as e:
        raise SystemExit(f"error: {e}") from None
    print(f"wrote {args.out}: features {arrays['features'].shape}", file=sys.stderr)
    if args.official_layout:
        name = args.layout_name or _layout_name(args.dataset)
        for path in write_official_layout(args.official_layout, name, args.model, args.split,
                                          arrays["features"], arrays.get("labels"), l2=args.l2):
            print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
