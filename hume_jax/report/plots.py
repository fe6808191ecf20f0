"""Pictures of a HUME result (PNG, matplotlib): confusion matrix, 2-D map, training curves."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

from hume_jax.evaluation import metrics as hm


def _figure(*args, **kwargs):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  return plt, plt.subplots(*args, **kwargs)


def confusion_matrix(
  pred: np.ndarray, labels: np.ndarray, path: str, title: str = "", class_names: list[str] | None = None
) -> np.ndarray:
  """Counts of (true class, found class). Found classes keep their own numbers (those of
  ``labels_*.npy``, the map and the example grid); their columns are ordered by the Hungarian
  matching so that matched pairs lie on the diagonal.

  Returns:
    ``counts [k, k]``: row = true class, column ``j`` = found class ``order[j]``.
  """
  k = int(max(pred.max(), labels.max()) + 1)
  to_true = hm.hungarian_map(pred, labels, k)  # found class -> matched true class
  order = np.argsort(to_true)  # column j: the found class matched to true class j
  counts = hm.contingency(labels, pred, k)[:, order]
  plt, (fig, ax) = _figure(figsize=(2.2 + 0.5 * k, 1.2 + 0.5 * k))
  ax.imshow(counts, cmap="Blues")
  for (i, j), c in np.ndenumerate(counts):
    if c:
      ax.text(j, i, str(c), ha="center", va="center", fontsize=7, color="white" if c > counts.max() / 2 else "black")
  ax.set_xlabel("found class (as in labels_*.npy), in matched order")
  ax.set_ylabel("true class")
  ax.set_xticks(range(k), [str(c) for c in order])
  names = list(class_names) if class_names is not None and len(class_names) == k else [str(i) for i in range(k)]
  ax.set_yticks(range(k), names, fontsize=7 if class_names else None)
  ax.set_title(title or f"ACC {100 * np.trace(counts) / counts.sum():.1f}%")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return counts


def embedding_map(
  phi2: np.ndarray, pred: np.ndarray, path: str, max_points: int = 5000, seed: int = 0, space: str = "phi2"
) -> None:
  """The first two principal components of ``phi2``, coloured by the found labels (one colour
  per class, the colour bar ticked at each class's number); ``space`` names it in the title and
  axes (e.g. ``"--phi1 (a.npy)"`` when that file serves as phi2)."""
  import matplotlib.colors as mcolors

  idx = np.random.default_rng(seed).permutation(len(pred))[:max_points]
  xy = PCA(2, random_state=seed).fit_transform(phi2[idx])
  k = int(pred.max()) + 1
  plt, (fig, ax) = _figure(figsize=(6, 5))
  cmap = plt.get_cmap("tab20" if k > 10 else "tab10", k)
  norm = mcolors.BoundaryNorm(np.arange(k + 1) - 0.5, k)
  sc = ax.scatter(xy[:, 0], xy[:, 1], c=pred[idx], s=3, cmap=cmap, norm=norm)
  bar = fig.colorbar(sc, ax=ax, label="found class (as in labels_*.npy)", ticks=np.arange(k))
  bar.ax.tick_params(labelsize=7)
  ax.set_xlabel(f"{space} principal component 1")
  ax.set_ylabel(f"{space} principal component 2")
  ax.set_title(f"{space}, first two principal components ({len(idx)} points)")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def training_curves(log: list[dict], path: str, entropy_max: float | None = None, sized: bool = False) -> None:
  """Loss, entropy and (when logged) accuracy against the outer iteration; with
  ``entropy_max`` (``ln K`` for HUME, summed over the spaces for TURTLE; ``H(prior)`` with a
  class-size prior, ``sized``, whose term the log then holds) the entropy panel spans 0 to it (a
  dashed line), so that a labeling near its target sizes reads as near the line rather than as
  noise on a narrow axis."""
  keys = [key for key in ("loss", "entropy", "acc") if log and key in log[0]]
  plt, (fig, axes) = _figure(1, len(keys), figsize=(4 * len(keys), 3), squeeze=False)
  it = [r["iteration"] for r in log]
  entropy = "size term H(prior) - KL (sizes by rank)" if sized else "entropy of mean labeling"
  for ax, key in zip(axes[0], keys):
    ax.plot(it, [r[key] for r in log])
    ax.set_xlabel("outer iteration")
    ax.set_title({"loss": "HUME loss (Eq. 7)", "entropy": entropy, "acc": "train accuracy (Hungarian)"}[key])
    if key == "entropy" and entropy_max:
      target = "the prior's sizes" if sized else "balanced"
      ax.axhline(entropy_max, color="gray", ls="--", lw=0.8, label=f"maximum {entropy_max:.3f} ({target})")
      ax.set_ylim(min(0.0, *(r[key] for r in log)), 1.05 * entropy_max)  # a size term can go below 0
      ax.legend(fontsize=7, loc="lower right")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def k_selection(scores: list[dict], chosen: int, path: str) -> None:
  """The label-free scores of each K tried by ``--k auto`` (and accuracy when known)."""
  plt, (fig, ax) = _figure(figsize=(6, 3.5))
  ks = [e["k"] for e in scores]
  ax.plot(ks, [e["stability"] for e in scores], "o-", label="stability (chooses K)")
  if all("cv_score" in e for e in scores):  # --k auto under --preset auto scores K by its runs, without one
    ax.plot(ks, [e["cv_score"] for e in scores], "s--", label="CV score")
  ax.plot(ks, [e["kappa"] for e in scores], "d--", label="chance-corrected CV")
  if all("acc" in e for e in scores):
    ax.plot(ks, [e["acc"] for e in scores], "^:", label="ACC vs labels (not used)")
  ax.axvline(chosen, color="gray", lw=0.8)
  ax.set_xlabel("K")
  ax.legend(fontsize=8)
  ax.set_title(f"--k auto chose K={chosen}")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def cluster_examples(images: np.ndarray, pred: np.ndarray, path: str, per_cluster: int = 8) -> None:
  """A grid of example images: one row per found class, its first ``per_cluster`` members.

  Args:
    images: ``uint8 [n, h, w]`` (grey) or ``[n, h, w, 3]`` (RGB), in the order of ``pred``.
    pred: ``[n]`` found labels.
  """
  k = int(pred.max()) + 1
  plt, (fig, axes) = _figure(k, per_cluster, figsize=(per_cluster * 0.8, k * 0.8), squeeze=False)
  for c in range(k):
    members = np.nonzero(pred == c)[0][:per_cluster]
    for j, ax in enumerate(axes[c]):
      ax.axis("off")
      if j < len(members):
        ax.imshow(images[members[j]], cmap="gray" if images.ndim == 3 else None)
    axes[c][0].set_title(f"class {c} ({int(np.sum(pred == c))})", fontsize=6, loc="left")
  fig.tight_layout(pad=0.2)
  fig.savefig(path, dpi=120)
  plt.close(fig)
