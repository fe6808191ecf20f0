"""K unknown, on a user's raw features: ``--preset auto``'s conditioning and both orders of the
spaces for every K, and the K whose runs agree most.

For each K in the range, ``hume_jax.search.auto.fit_auto`` runs from the official random start with
each space as phi1 (the two runs a K needs to measure agreement), on the spaces conditioned
once, each K with the same share of the budget (each plan is the cost model's, never the
clock's). Two runs from different starts and spaces agree on a partition the data hold (stability: adjusted Rand index
of their labelings; Ben-Hur et al. 2002) and disagree where K splits or merges classes
arbitrarily. A K whose runs leave a class nearly empty (below ``TINY`` of its balanced share)
has not found K classes and is not chosen. The chosen K then gets the full search, k-means
starts included (``fit_auto``), with the rest of the budget.
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.metrics import adjusted_rand_score
from tqdm.auto import tqdm

from hume_jax.config import AUTO, HumeConfig
from hume_jax.evaluation.metrics import hungarian_accuracy
from hume_jax.io.data import check_fit_inputs
from hume_jax.search.auto import fit_auto, member_labels
from hume_jax.search.budget import K_AUTO_BUDGET, K_AUTO_SHARE
from hume_jax.search.conditioning import condition_spaces, kept_dims
from hume_jax.training._fit import release_compiled
from hume_jax.training.ensemble import KSelection
from hume_jax.training.hooks import Hooks, hooks_of

MIN_SHARE = 20.0  # seconds: a K's runs below this are planned at the budget's floor of iterations
TINY = 0.1  # a class with fewer than this share of n / K samples counts as not found
WEAK = 0.3  # adjusted Rand index below which two runs agree little (0: chance, 1: the same labeling)


def select_k_auto(
  phi_a: np.ndarray,
  phi_b: np.ndarray,
  k_range: tuple[int, int],
  *,
  budget_seconds: float = K_AUTO_BUDGET * K_AUTO_SHARE,
  seed: int = 42,
  config: HumeConfig = AUTO,
  num_iters: int | None = None,
  labels=None,
  done: dict[int, dict] | None = None,
  hooks: Hooks | None = None,
  **fields,
) -> KSelection:
  """Two ``fit_auto`` runs (random starts, each space as phi1) for each K of ``k_range``
  (inclusive), within ``budget_seconds`` in all; the K whose runs agree most among those that
  found K classes. ``labels`` (optional) only add each K's accuracy to its scores; ``done`` /
  ``hooks.on_k`` keep the scores of each K across a stop (as ``ensemble.select_k``; ``hooks``:
  ``hume_jax.training.hooks.Hooks`` or its ``**fields``, ``say``, ``progress`` and ``stop`` too). After
  each K the process's compiled JAX programs are released (``_fit.release_compiled``)."""
  check_fit_inputs(phi_a, phi_b, unit_phi1=False, names=("phi_a", "phi_b"))  # once; fit_auto is given the spaces
  hooks = hooks_of(hooks, fields)
  ks = list(range(k_range[0], k_range[1] + 1))
  spaces = condition_spaces(phi_a, phi_b, kept_dims(k_range[1]))
  hooks.say(
    f"K auto: {len(ks)} values of K, each two runs (random starts, each space as phi1): about "
    f"{budget_seconds:.0f} s in all, {budget_seconds / len(ks):.0f} s per K"
  )
  scores = []
  for i, k in enumerate(tqdm(ks, desc="K auto", unit="K", disable=not hooks.progress)):
    if done and k in done:
      scores.append(done[k])
      hooks.say(f"K={k}: kept from before")
      continue
    if k > max(x.shape[1] for x in spaces.cond1.values()) or k > len(phi_a):
      hooks.say(f"K={k}: skipped (more classes than dimensions in either space, or than samples)")
      continue
    share = max(budget_seconds / len(ks), MIN_SHARE)  # a fixed share (no clock): the same plan on any machine
    entry = _score_k(phi_a, phi_b, k, spaces, share, seed, config, num_iters, labels, hooks)
    release_compiled()  # this K's programs are not run again
    scores.append(entry)
    if hooks.on_k is not None:
      hooks.on_k(k, entry)
    hooks.say(
      f"K={k}: stability {entry['stability']:.4f}, separability {entry['kappa']:.4f}, smallest class "
      f"{entry['smallest_class']}"
      + ("" if entry["found_k"] else " (too small: not chosen)")
      + (f", ACC {entry['acc']:.4f} (not used)" if "acc" in entry else "")
    )
  return _choose(scores, k_range, hooks)


def _choose(scores: list[dict], k_range: tuple[int, int], hooks: Hooks) -> KSelection:
  """The K whose runs agree most among those without tiny classes (of all, if every K has one)."""
  eligible = [e for e in scores if e["found_k"]] or scores
  if not eligible:
    raise ValueError(f"k_range {k_range[0]}:{k_range[1]}: holds no K that this data allows")
  best = max(eligible, key=lambda e: e["stability"])
  hooks.say(f"K auto: chose K={best['k']}")
  warning = weak_agreement(best["stability"])
  if warning:
    hooks.say("K auto: warning: " + warning)
  criterion = "stability: ARI between the runs of each space as phi1 (random starts), among K without tiny classes"
  return KSelection(best["k"], criterion, scores, warning)


def weak_agreement(stability: float) -> str | None:
  """The warning for a chosen K whose two runs agree little (``stability`` below ``WEAK``), else None."""
  if stability >= WEAK:
    return None
  return (
    f"at every K the runs of the two spaces agree little (best ARI {stability:.2f} < {WEAK}): these "
    "representations do not settle K, so the K chosen is weakly supported; give K yourself if you know it, "
    "or bring stronger representations"
  )


def _score_k(phi_a, phi_b, k: int, spaces, share: float, seed: int, config, num_iters, labels, hooks: Hooks) -> dict:
  """One K: its two runs (``fit_auto`` from random starts, each space as phi1) and their agreement."""
  t0 = time.perf_counter()
  quiet = Hooks(say=lambda s: None, progress=False, stop=hooks.stop)  # this K's runs: only the stop
  res = fit_auto(
    phi_a,
    phi_b,
    k,
    budget_seconds=share,
    seed=seed,
    config=config,
    num_iters=num_iters,
    hooks=quiet,
    spaces=spaces,
    min_runs=2,
    starts=("random",),
    refine=False,  # K is judged by the runs' agreement, not by the labels
  )
  preds = member_labels(res.members, phi_a, phi_b)
  smallest = min(int(np.bincount(p, minlength=k).min()) for p in preds)
  entry = {
    "k": k,
    "stability": float(adjusted_rand_score(preds[0], preds[-1])),
    "kappa": res.candidates[res.reference]["separability"],
    "runs": len(res.members),
    "smallest_class": smallest,
    "found_k": smallest >= TINY * len(phi_a) / k,
    "seconds": time.perf_counter() - t0,
  }
  if labels is not None:
    entry["acc"] = hungarian_accuracy(preds[res.reference], labels)
  return entry
