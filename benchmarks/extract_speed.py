"""Images per second of feature extraction (``python -m extract_torch``'s path), per model.

    python benchmarks/extract_speed.py [--n 512] [--batch-size 64] [--repeats 3] [--models a,b,...]

Reads the first N Fashion-MNIST test images (Debian's dataset-fashion-mnist; scikit-learn's
sample photos, tiled, when it is not installed), and times preprocessing + forward pass in
batches, as the CLI runs them with ``--workers 0``, after one warm-up batch. Prints the
median over repeats. Models with random weights (``--random``) time the architecture only,
for the models whose weights do not ship offline.

Sample output (2-core x86_64 CPU, torch 2.13.0, 2 threads):

    # x86_64 , 2 cores, torch 2.13.0+cpu, 2 threads; 512 images: Fashion-MNIST test (28x28 grey)
    model                    px  batch    img/s (median of 3)
    efficientnet_lite0      112     64                  179.8
    efficientnet_lite0      224     64                   28.0
    open_nsfw               def     64                   59.8
"""

from __future__ import annotations

import argparse
import os
import platform
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
  p.add_argument("--batch-size", type=int, default=64)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--models", default=DEFAULT, help=f"comma-separated NAME[@PX] (default {DEFAULT})")
  p.add_argument("--random", action="store_true", help="random weights (architectures whose weights do not ship)")
  p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
  args = p.parse_args()
  if args.threads:
    torch.set_num_threads(args.threads)
  images, what = _images(args.n)
  print(
    f"# {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, torch {torch.__version__}, "
    f"{torch.get_num_threads()} threads; {args.n} images: {what}"
  )
  print(f"{'model':22s} {'px':>4s} {'batch':>6s} {'img/s (median of ' + str(args.repeats) + ')':>22s}")
  for entry in args.models.split(","):
    name, _, px = entry.partition("@")
    extractor = build_model(name, weights="random" if args.random else None, image_size=int(px) if px else None)
    extractor(images[: args.batch_size])  # warm-up
    rates = []
    for _ in range(args.repeats):
      t = time.perf_counter()
      for start in range(0, len(images), args.batch_size):
        extractor(images[start : start + args.batch_size])
      rates.append(len(images) / (time.perf_counter() - t))
    print(f"{name:22s} {px or 'def':>4s} {args.batch_size:6d} {np.median(rates):22.1f}")


if __name__ == "__main__":
  main()
