"""Chooses the CPU preset of the default Fashion-MNIST run by HUME's label-free CV score.

    python benchmarks/cpu_preset.py [NUM_ITERS [INDICES]]   # about 30 minutes on 2 CPU cores

Each candidate (which model is phi1, subsets, steps, inner lr) trains on the 10k training
images; its labeling of the 10k test images is scored by the CV score (10-fold logistic
regression on phi2, no ground truth). The candidate with the best CV score becomes
``hume_jax.config.CPU``. Test accuracy is printed beside it for information only: it
plays no part in the choice.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import sys
import time

from hume_jax import OFFICIAL, cv_score, fit, hungarian_accuracy, predict
from hume_jax.io.data import l2_normalize, load_default

MODELS = ("efficientnet_lite0", "open_nsfw")
# (phi1 model, num_subsets, subset_size, adaptation_steps, inner_lr, outer_lr)
CANDIDATES = [
  ("efficientnet_lite0", 4, 4000, 100, 1e-3, 1e-3),
  ("open_nsfw", 4, 4000, 100, 1e-3, 1e-3),
  ("efficientnet_lite0", 4, 4000, 100, 3e-3, 1e-3),
  ("open_nsfw", 4, 4000, 100, 3e-3, 1e-3),
  ("efficientnet_lite0", 8, 2000, 100, 3e-3, 1e-3),
  ("open_nsfw", 8, 2000, 100, 3e-3, 1e-3),
  ("open_nsfw", 8, 2000, 100, 3e-3, 3e-3),
  ("open_nsfw", 8, 2000, 100, 3e-3, 1e-2),
  ("open_nsfw", 8, 2000, 50, 6e-3, 1e-3),
  ("open_nsfw", 8, 2000, 100, 3e-3, 3e-2),
  ("open_nsfw", 8, 2000, 50, 6e-3, 1e-2),
]


def main() -> None:
  num_iters = int(sys.argv[1]) if len(sys.argv) > 1 else 300
  only = [int(i) for i in sys.argv[2].split(",")] if len(sys.argv) > 2 else range(len(CANDIDATES))
  print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}; num_iters={num_iters}")
  print(f"{'phi1':<20}{'S':>4}{'m':>6}{'T':>5}{'inner_lr':>10}{'outer_lr':>10}{'s/it':>7}{'CV':>8}{'test ACC':>10}")
  rows = []
  for phi1_model, S, m, T, inner_lr, outer_lr in (CANDIDATES[i] for i in only):
    phi2_model = [x for x in MODELS if x != phi1_model][0]
    train, test, _ = load_default(phi1_model, phi2_model)
    cfg = dataclasses.replace(
      OFFICIAL,
      num_subsets=S,
      subset_size=m,
      adaptation_steps=T,
      inner_lr=inner_lr,
      outer_lr=outer_lr,
      num_iters=num_iters,
    )
    t0 = time.perf_counter()
    state, _ = fit(l2_normalize(train.phi1, "phi1"), train.phi2, cfg, progress=False, log_every=50)
    sec = (time.perf_counter() - t0) / num_iters
    pred = predict(state.encoder, l2_normalize(test.phi1, "phi1"))
    cv = cv_score(test.phi2, pred)
    acc = hungarian_accuracy(pred, test.labels)
    rows.append(
      dict(phi1=phi1_model, S=S, m=m, T=T, inner_lr=inner_lr, outer_lr=outer_lr, sec_per_iter=sec, cv=cv, acc=acc)
    )
    print(
      f"{phi1_model:<20}{S:>4}{m:>6}{T:>5}{inner_lr:>10.0e}{outer_lr:>10.0e}{sec:>7.2f}{cv:>8.4f}{acc:>10.4f}",
      flush=True,
    )
  best = max(rows, key=lambda r: r["cv"])
  print("best by CV:", json.dumps(best))


if __name__ == "__main__":
  main()
