"""Images per second of feature extraction (``python -m extract_torch``'s path), per model.

    python benchmarks/extract_speed.py [--n 512] [--batch-sizes 4,16,64] [--repeats 3] [--models a,b,...]
    EXTRACT_TORCH_SYSTEM_MALLOC=1 python benchmarks/extract_speed.py ...   # glibc's default malloc

Reads the first N Fashion-MNIST test images (Debian's dataset-fashion-mnist; scikit-learn's
sample photos, tiled, when it is not installed), and times preprocessing + forward pass in
batches, as the CLI runs them with ``--workers 0``, after one warm-up batch. Prints the
median over repeats, and the user and system CPU seconds per image (system time is the page
faults of memory freed to the OS and taken back, which ``keep_freed_memory`` removes).
Models with random weights (``--random``) time the architecture only,
for the models whose weights do not ship offline.

Sample output (2-core x86_64 CPU, torch 2.13.0, 2 threads; benchmarks/README.md has the table):

    # x86_64 , 2 cores, torch 2.13.0+cpu, 2 threads, malloc: freed memory kept; 320 images: CIFAR-10 test JPEGs
    model                    px  batch    img/s  user ms/img  sys ms/img
    efficientnet_lite0      def     16    107.6         18.4         0.2
    efficientnet_lite2      def     16     43.7         45.2         0.1
    open_nsfw               def     16     65.7         30.0         0.0
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time

import numpy as np
import torch

from extract_torch.models import build_model

DEFAULT = "efficientnet_lite0@112,efficientnet_lite0@224,open_nsfw"


def _images(n: int) -> tuple[np.ndarray, str]:
  try:
    from extract_torch.datasets import fashion_mnist

    return fashion_mnist("test")[0][:n], "Fashion-MNIST test (28x28 grey)"
  except FileNotFoundError:
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    return np.stack([photos[i % 2] for i in range(n)]), "scikit-learn sample photos (427x640 RGB)"


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--n", type=int, default=512, help="images per timed pass (default 512)")
  p.add_argument("--batch-sizes", default="16", help="comma-separated batch sizes (default 16, the CPU default)")
  p.add_argument("--cifar10", metavar="DIR", help="time CIFAR-10 test images (a folder:DIR/test) instead")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--models", default=DEFAULT, help=f"comma-separated NAME[@PX] (default {DEFAULT})")
  p.add_argument("--random", action="store_true", help="random weights (architectures whose weights do not ship)")
  p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
  args = p.parse_args()
  if args.threads:
    torch.set_num_threads(args.threads)
  images, what = _images(args.n) if not args.cifar10 else _cifar(args.cifar10, args.n)
  malloc = "glibc default" if os.environ.get("EXTRACT_TORCH_SYSTEM_MALLOC") == "1" else "freed memory kept"
  print(
    f"# {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, torch {torch.__version__}, "
    f"{torch.get_num_threads()} threads, malloc: {malloc}; {args.n} images: {what}"
  )
  print(f"{'model':22s} {'px':>4s} {'batch':>6s} {'img/s':>8s} {'user ms/img':>12s} {'sys ms/img':>11s}")
  for entry in args.models.split(","):
    name, _, px = entry.partition("@")
    extractor = build_model(name, weights="random" if args.random else None, image_size=int(px) if px else None)
    for batch in (int(b) for b in args.batch_sizes.split(",")):
      extractor(images[:batch])  # warm-up
      rates, user, system = [], [], []
      for _ in range(args.repeats):
        t, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        for start in range(0, len(images), batch):
          extractor(images[start : start + batch])
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        rates.append(len(images) / (time.perf_counter() - t))
        user.append((r1.ru_utime - r0.ru_utime) / len(images))
        system.append((r1.ru_stime - r0.ru_stime) / len(images))
      print(
        f"{name:22s} {px or 'def':>4s} {batch:6d} {np.median(rates):8.1f} {1e3 * np.median(user):12.1f} "
        f"{1e3 * np.median(system):11.1f}",
        flush=True,
      )


def _cifar(root: str, n: int) -> tuple[np.ndarray, str]:
  from extract_torch.datasets import open_dataset

  source = open_dataset(f"folder:{os.path.join(root, 'test')}").per_class(max(1, n // 10))
  return np.stack([np.asarray(source.get(i)) for i in range(len(source))]), "CIFAR-10 test JPEGs (32x32 RGB)"


if __name__ == "__main__":
  main()
