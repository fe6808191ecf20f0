"""One trained run, whatever the method or protocol: the ``Run`` result type and the ways to train
(one run, seeds, ``--preset auto``) with a ``Method`` (``hume_jax.training.methods``: HUME and TURTLE as
values, not branches). Splits are dicts with ``phi1``, ``phi2`` and ``labels`` (or None); nothing
here sees flags, paths or ``argv``.

    run = train_one(HUME_METHOD, HumeConfig(k=10), train, val)
    run.preds["val"], run.cv_score
"""

from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple

import numpy as np

from hume_jax.core._plan import Execution
from hume_jax.core._task_encoder import encoder_matrix
from hume_jax.evaluation import metrics as hm
from hume_jax.evaluation.sampling import ROWS
from hume_jax.search.auto import Resume, fit_auto, vote_labels
from hume_jax.search.budget import DEFAULT_BUDGET
from hume_jax.search.premise import premise_report
from hume_jax.search.sizes import short_classes
from hume_jax.training.ensemble import best_and_vote
from hume_jax.training.hooks import Hooks, hooks_of
from hume_jax.training.methods import HUME_METHOD, METHODS, TURTLE_METHOD, Method  # noqa: F401  (re-exported)


class Run(NamedTuple):
  """A trained run, ready to report and save.

  Attributes:
    method: the label of its table row(s), e.g. ``"HUME"``, ``"HUME (auto)"``.
    preds: ``{split: [n]}`` hard labels: ``"train"``, ``"val"`` and, for seeds, ``"train_vote"``, ...
    cv_score: the label-free CV score of the reported labels on ``cv_split``.
    cv_split: ``"val"`` when a val split was given, else ``"train"``.
    seconds: training time.
    rows: ``((table label, split key of preds), ...)``: the rows the run adds to a results table.
    arrays: what labels new samples (``task_encoder.npz``).
    config: the configuration trained (for auto, the kept run's).
    extra: method-specific entries of ``metrics.json`` (``seeds``, ``best_seed``, ``over_seeds``, ``auto``).
  """

  method: str
  preds: dict
  cv_score: float
  cv_split: str
  seconds: float
  rows: tuple
  arrays: dict
  config: Any
  extra: dict


def result_arrays(result, names: dict[str, str] | None = None) -> dict[str, np.ndarray]:
  """What labels new samples, as plain arrays (``task_encoder.npz`` of a ``--preset auto`` run):
  the kept run's ``E`` and its conditioning (``phi1_*``, ``phi2_*``: ``argmax(condition(x) @
  E.T)`` gives its labels), then every run ``run{i}_*`` with the space it reads (named by
  ``names``, e.g. ``{"a": "--phi1"}``), its conditioning and its map to the kept run's numbering,
  from which a few lines of numpy rebuild the vote; and, when the labels are refined
  (``hume_jax.search.refine``), each space's ``refine_{a,b}_*``: ``(x - mean) @ components.T`` is what
  its classifier (``coef``, ``intercept``) reads, and the labels are the argmax of the summed
  log-softmax of both classifiers' logits (``vote_labels`` does all of it)."""
  names = names or {"a": "a", "b": "b"}
  enc = result.state.encoder
  arrays = {"raw": np.asarray(enc.raw), "base": np.asarray(enc.base), "E": np.asarray(encoder_matrix(enc))}
  for role, c in result.conditioning.items():
    arrays.update({f"{role}_mean": c.mean, f"{role}_components": c.components, f"{role}_scale": np.asarray(c.scale)})
  for i, r in enumerate(result.members):
    c = r.conditioning
    arrays.update(
      {
        f"run{i}_E": np.asarray(encoder_matrix(r.encoder)),
        f"run{i}_reads": np.asarray(names[r.phi1]),
        f"run{i}_mean": c.mean,
        f"run{i}_components": c.components,
        f"run{i}_to_kept": r.to_reference,
      }
    )
  arrays["kept_run"] = np.asarray(result.reference)
  arrays["labels_are_vote"] = np.asarray(result.vote["used"])
  arrays["labels_are_refined"] = np.asarray(result.refiner is not None)
  if result.refiner is not None:  # argmax over classes of the summed log-softmax of both logits
    ref = result.refiner
    for s, c in ref.conditioning.items():
      arrays.update(
        {
          f"refine_{s}_reads": np.asarray(names[s]),
          f"refine_{s}_mean": c.mean,
          f"refine_{s}_components": c.components[: ref.dims] * c.scale,
          f"refine_{s}_coef": ref.coef[s],
          f"refine_{s}_intercept": ref.intercept[s],
        }
      )
  return arrays


def _silent(line: str) -> None:
  """A ``say`` that says nothing."""


def _stage(hooks: Hooks) -> Callable[[str], None]:
  """How a run announces a stage after training: by ``hooks.say``, unless its hooks turn progress off."""
  return hooks.say if hooks.progress else _silent


def _eval_split(val) -> str:
  return "val" if val is not None else "train"


def _predictions(label, train, val) -> dict[str, np.ndarray]:
  return {"train": label(train), **({"val": label(val)} if val is not None else {})}


def train_one(
  method: Method,
  config,
  train: dict,
  val: dict | None = None,
  *,
  state=None,
  execution: Execution = Execution(),
  hooks: Hooks | None = None,
  **fields,
) -> Run:
  """One run of ``method`` on ``train`` (from ``state``, e.g. a checkpoint), labels of each
  split, and the CV score on the evaluation split (val when given); ``execution`` schedules its steps,
  ``hooks`` (``hume_jax.training.hooks.Hooks``, or its ``**fields``) watch and keep it."""
  hooks = hooks_of(hooks, fields)
  t0 = time.perf_counter()
  state = method.fit(config, train, state, hooks, execution)
  seconds = time.perf_counter() - t0
  preds = _predictions(lambda split: method.label(state, split), train, val)
  split = _eval_split(val)
  _stage(hooks)("computing the CV score (10-fold logistic regression on phi2 of the found labels) ...")
  cv = hm.cv_score((val if val is not None else train)["phi2"], preds[split])
  return Run(method.name, preds, cv, split, seconds, ((method.name, split),), method.arrays(state), config, {})


def train_seeds(
  method: Method,
  config,
  seeds: list[int],
  train: dict,
  val: dict | None = None,
  *,
  chunk: int | None = None,
  execution: Execution = Execution(),
  hooks: Hooks | None = None,
  **fields,
) -> Run:
  """The official protocol: one run per seed (``chunk`` at a time where runs are stacked), the run with
  the best CV score, and the majority vote of all runs matched to it (``preds["<split>_vote"]``);
  per-seed scores (and metrics when the evaluation split has labels) in ``extra``. ``execution`` schedules
  the steps, ``hooks``
  (``hume_jax.training.hooks.Hooks``, or its ``**fields``) watch the runs and keep each part."""
  hooks = hooks_of(hooks, fields)
  say = hooks.say
  t0 = time.perf_counter()
  states = method.fit_seeds(config, train, seeds, hooks, chunk, execution)
  seconds = time.perf_counter() - t0
  all_preds = _predictions(lambda split: method.label_seeds(states, split), train, val)
  split, evaluation = _eval_split(val), (val if val is not None else train)
  _stage(hooks)(f"computing the CV score of each of the {len(seeds)} runs ...")
  protocol = best_and_vote(all_preds, evaluation["phi2"], split, config.k)
  per_seed = [{"seed": s, "cv_score": cv} for s, cv in zip(seeds, protocol.cv_scores)]
  extra = {"best_seed": seeds[protocol.best], "seeds": per_seed}
  if evaluation["labels"] is not None:
    for entry, p in zip(per_seed, all_preds[split]):
      entry.update(hm.evaluate(p, evaluation["labels"]))
    extra["over_seeds"] = {
      m: {"mean": float(np.mean([e[m] for e in per_seed])), "std": float(np.std([e[m] for e in per_seed]))}
      for m in ("acc", "nmi", "ari")
    }
    say(
      "over seeds: "
      + ", ".join(f"{m.upper()} {100 * v['mean']:.1f} +- {100 * v['std']:.1f}" for m, v in extra["over_seeds"].items())
    )
  rows = (
    (f"{method.name} best-CV run (seed {seeds[protocol.best]})", split),
    (f"{method.name} majority vote ({len(seeds)} runs)", f"{split}_vote"),
  )
  return Run(
    method.name,
    protocol.preds,
    protocol.cv_scores[protocol.best],
    split,
    seconds,
    rows,
    method.seed_arrays(states, protocol.best),
    config,
    extra,
  )


def train_auto(
  config,
  train: dict,
  val: dict | None = None,
  *,
  budget_seconds: float = DEFAULT_BUDGET,
  num_iters: int | None = None,
  hooks: Hooks | None = None,
  names: dict | None = None,
  resume: Resume = Resume(),
  prior=None,
  **fields,
) -> tuple[Run, dict, dict | None]:
  """``hume_jax.search.auto.fit_auto`` on the raw spaces of ``train`` (``phi1`` is space ``a``), its
  labels (the vote) of each split, and the splits in the chosen order: ``(run, train, val)``
  with ``phi1``/``phi2`` swapped when the search kept ``phi2`` as HUME's phi1. ``hooks`` (or its
  ``**fields``), ``names`` (default ``phi1``, ``phi2``), ``resume`` and ``prior`` are ``fit_auto``'s
  (``prior`` by default ``config.prior``)."""
  hooks, names = hooks_of(hooks, fields), names or {"a": "phi1", "b": "phi2"}
  t0 = time.perf_counter()
  res = fit_auto(
    train["phi1"],
    train["phi2"],
    config.k,
    budget_seconds=budget_seconds,
    seed=config.seed,
    config=config,
    num_iters=num_iters,
    hooks=hooks,
    names=names,
    resume=resume,
    prior=config.prior if prior is None else prior,
  )
  seconds = time.perf_counter() - t0 + resume.spent_seconds
  return auto_run(res, train, val, seconds, hooks, names)


def auto_run(
  res, train: dict, val: dict | None, seconds: float, hooks: Hooks = Hooks(), names: dict | None = None
) -> tuple[Run, dict, dict | None]:
  """The ``Run`` of a ``hume_jax.search.auto.AutoResult``: its vote's labels of each split, the CV score,
  and the splits in the chosen order (``phi1``/``phi2`` swapped when the search kept ``phi2``); ``names``
  (default ``phi1``, ``phi2``) name the spaces in its report."""
  names = names or {"a": "phi1", "b": "phi2"}
  preds = _predictions(lambda split: vote_labels(res, split["phi1"], split["phi2"]), train, val)
  if res.order == ("b", "a"):  # the vote reads the raw spaces in the given order, so it comes first
    train, val = (None if d is None else {**d, "phi1": d["phi2"], "phi2": d["phi1"]} for d in (train, val))
  split = _eval_split(val)
  evaluation = val if val is not None else train
  rows = "" if len(evaluation["phi2"]) <= ROWS else f", on a seeded subsample of {ROWS} rows"
  _stage(hooks)(f"computing the CV score (10-fold logistic regression on phi2 of the found labels{rows}) ...")
  cv = hm.cv_score(evaluation["phi2"], preds[split], rows=ROWS, solver=None)  # JAX on an accelerator
  extra = {"auto": _auto_report(res, names)}
  rows = (("HUME (auto)", split),)
  run = Run("HUME (auto)", preds, cv, split, seconds, rows, result_arrays(res, names), res.config, extra)
  return run, train, val


def _auto_report(res, names: dict) -> dict:
  """``metrics.json``'s ``auto``: the order kept, the criterion, every candidate, the vote, the plan
  and the premise's measurements, with the spaces named as the caller names them."""
  labels = (
    "majority vote of the runs, matched to the kept run"
    if res.vote["used"]
    else "the kept run (the vote left a class empty)"
  ) + (", refined in both spaces (hume_jax.search.refine)" if res.refiner is not None else "")
  return {
    "phi1": names[res.order[0]],
    "phi2": names[res.order[1]],
    "swapped": res.order == ("b", "a"),  # the search kept space b as phi1
    "criterion": "separability: chance-corrected 5-fold CV score (kappa) of the labeling in each "
    "conditioned space, averaged (label-free)",
    "candidates": [{**c, "phi1": names[c["phi1"]], "phi2": names[c["phi2"]]} for c in res.candidates],
    "labels": labels,
    "vote": res.vote,
    "refinement": res.refinement,
    "plan": res.plan,
  }


def summarize(
  run: Run,
  train: dict,
  val: dict | None,
  premise: bool = True,
  *,
  names: dict[str, str] | None = None,
  say: Callable[[str], None] = _silent,
) -> dict:
  """``metrics.json``: the CV score, the class counts of every split (and ACC/NMI/ARI where the
  split has labels), the run's extra entries and (``premise``) the label-free check of whether
  the representations favour the labeling found (``hume_jax.search.premise``). ``names`` is how the
  spaces in the roles ``phi1`` and ``phi2`` are called (kept as ``spaces``; the premise check
  names them so), e.g. ``{"phi1": "--phi2 (b.npy)", "phi2": "--phi1 (a.npy)"}`` after a swap;
  ``say`` announces the premise check."""
  results = {"cv_score": run.cv_score, "cv_split": run.cv_split, "train_seconds": run.seconds, "splits": {}}
  prior = getattr(run.config, "prior", None)
  results["class_size_prior"] = None if prior is None else list(prior)
  if names is not None:
    results["spaces"] = dict(names)
  for split, pred in run.preds.items():
    sizes = hm.cluster_sizes(pred, run.config.k)
    entry = {
      "n": int(len(pred)),
      "cluster_sizes": sizes,
      "nonempty_classes": sum(s > 0 for s in sizes),
      "smallest_class": min(sizes),
      "short_classes": short_classes(sizes, prior),
    }
    y = (val if split.startswith("val") else train)["labels"]
    if y is not None:
      entry.update(hm.evaluate(pred, y))
    results["splits"][split] = entry
  results.update(run.extra)
  if premise:
    evaluation = val if run.cv_split == "val" else train
    reported = run.preds.get(f"{run.cv_split}_vote", run.preds[run.cv_split])
    roles = names or {"phi1": "phi1", "phi2": "phi2"}
    say("computing the premise check (k-means of each space and 6 cross-validated regressions) ...")
    results["premise"] = premise_report(
      evaluation["phi1"], evaluation["phi2"], reported, run.config.k, names=(roles["phi1"], roles["phi2"])
    )
  return results


def table_rows(run: Run, results: dict) -> dict[str, dict]:
  """``{row label: metrics}`` of the run's rows, for a results table (splits with labels)."""
  return {label: results["splits"][split] for label, split in run.rows if "acc" in results["splits"][split]}
