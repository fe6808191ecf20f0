"""One trained run, whatever the method or protocol: ``Method`` values for HUME and TURTLE, the
``Run`` result type, and the three ways to train (one run, seeds, ``--preset auto``).

The difference between HUME and TURTLE is a value (``HUME_METHOD``, ``TURTLE_METHOD``: a
``NamedTuple`` of pure functions, as optax's ``GradientTransformation``), not a branch. Splits are dicts with
``phi1``, ``phi2`` and ``labels`` (or None); nothing here sees flags, paths or ``argv``.

    run = train_one(HUME_METHOD, HumeConfig(k=10), train, val)
    run.preds["val"], run.cv_score
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, NamedTuple

import numpy as np

from hume_jax import metrics as hm


class Method(NamedTuple):
  """A training method as pure functions of its config and the splits.

  Attributes:
    name: ``"HUME"`` or ``"TURTLE"``.
    init: ``(config, train) -> state``: the seed's initial state (the template of a checkpoint).
    fit: ``(config, train, state, hooks) -> state``: trains from ``state``; ``hooks`` are the
      loop's keyword arguments (``log_every``, ``progress``, ``on_log``, ``checkpoint_every``,
      ``on_checkpoint``, ``stop``, ``on_estimate``).
    label: ``(state, split) -> [n]`` hard labels.
    arrays: ``state -> {name: array}``: what labels new samples (``task_encoder.npz``).
    fit_seeds: ``(config, train, seeds, hooks) -> states`` one run per seed.
    label_seeds: ``(states, split) -> [N, n]``.
    seed_arrays: ``(states, best) -> {name: array}``.
  """

  name: str
  init: Callable
  fit: Callable
  label: Callable
  arrays: Callable
  fit_seeds: Callable
  label_seeds: Callable
  seed_arrays: Callable


def _encoder_arrays(encoder) -> dict[str, np.ndarray]:
  """``raw``, ``base`` and ``E`` of one task encoder, or of stacked ones (``[N, ...]``)."""
  import jax

  from hume_jax._task_encoder import encoder_matrix

  E = jax.vmap(encoder_matrix)(encoder) if encoder.raw.ndim == 3 else encoder_matrix(encoder)
  return {"raw": np.asarray(encoder.raw), "base": np.asarray(encoder.base), "E": np.asarray(E)}


def _hume_init(config, train):
  import jax

  from hume_jax._outer import init_state

  return init_state(jax.random.PRNGKey(config.seed), config, train["phi1"].shape[1], train["phi2"].shape[1])


def _hume_fit(config, train, state, hooks):
  from hume_jax._fit import fit

  return fit(train["phi1"], train["phi2"], config, labels=train["labels"], state=state, **hooks)[0]


_SEED_HOOKS = ("progress", "log_every", "stop", "checkpoint_every", "on_estimate", "resume_part", "on_part")


def _hume_seeds(config, train, seeds, hooks):
  from hume_jax.ensemble import fit_seeds

  return fit_seeds(
    train["phi1"],
    train["phi2"],
    config,
    seeds,
    chunk=hooks.get("chunk"),
    **{key: v for key, v in hooks.items() if key in _SEED_HOOKS},
  )


def _hume_label(state, split):
  from hume_jax._fit import predict

  return predict(state.encoder, split["phi1"])


def _hume_label_seeds(states, split):
  from hume_jax.ensemble import predict_seeds

  return predict_seeds(states, split["phi1"])


HUME_METHOD = Method(
  "HUME",
  _hume_init,
  _hume_fit,
  _hume_label,
  lambda st: _encoder_arrays(st.encoder),
  _hume_seeds,
  _hume_label_seeds,
  lambda states, best: _encoder_arrays(states.encoder),
)


def _turtle_init(config, train):
  import jax

  from hume_jax._fit import compute_dtype
  from hume_jax.turtle import init_turtle

  phis = (train["phi1"], train["phi2"])
  return init_turtle(jax.random.PRNGKey(config.seed), config, tuple(x.shape[1] for x in phis), compute_dtype(phis[0]))


def _turtle_fit(config, train, state, hooks):
  from hume_jax.turtle import fit_turtle

  return fit_turtle([train["phi1"], train["phi2"]], config, labels=train["labels"], state=state, **hooks)[0]


def _turtle_label(state, split):
  from hume_jax.turtle import predict_turtle

  return predict_turtle(state.encoder, [split["phi1"], split["phi2"]])


def _turtle_seeds(config, train, seeds, hooks):
  """TURTLE's runs one after the other (each compiled step shared: ``turtle_step_jit``); a part
  is one seed (``hooks``: as ``hume_jax.ensemble.fit_seeds``'s)."""
  say, resume_part, on_part = hooks.get("say", print), hooks.get("resume_part"), hooks.get("on_part")
  loop = {
    key: v for key, v in hooks.items() if key in ("progress", "log_every", "stop", "checkpoint_every", "on_estimate")
  }
  states = []
  for i, seed in enumerate(seeds):
    say(f"TURTLE run {i + 1} of {len(seeds)} (seed {seed})")
    cfg = dataclasses.replace(config, seed=seed)
    template = _turtle_init(cfg, train)
    saved = None if resume_part is None else resume_part(i, template)
    save = None if on_part is None else (lambda st, i=i: on_part(i, st, int(st.step) == config.num_iters))
    states.append(_turtle_fit(cfg, train, template if saved is None else saved, dict(loop, on_checkpoint=save)))
  return states


def _head_arrays(encoder) -> dict[str, np.ndarray]:
  """``v1, g1, b1, v2, ...``: the TURTLE heads of each space."""
  arrays = {}
  for m, head in enumerate(encoder, start=1):
    arrays.update({f"v{m}": np.asarray(head.v), f"g{m}": np.asarray(head.g), f"b{m}": np.asarray(head.b)})
  return arrays


TURTLE_METHOD = Method(
  "TURTLE",
  _turtle_init,
  _turtle_fit,
  _turtle_label,
  lambda st: _head_arrays(st.encoder),
  _turtle_seeds,
  lambda states, split: np.stack([_turtle_label(s, split) for s in states]),
  lambda states, best: _head_arrays(states[best].encoder),
)


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
  hooks: dict | None = None,
  say: Callable[[str], None] = print,
) -> Run:
  """One run of ``method`` on ``train`` (from ``state``, e.g. a checkpoint), labels of each
  split, and the CV score on the evaluation split (val when given)."""
  t0 = time.perf_counter()
  state = method.fit(config, train, state, dict(hooks or {}))
  seconds = time.perf_counter() - t0
  preds = _predictions(lambda split: method.label(state, split), train, val)
  split = _eval_split(val)
  say("computing the CV score (10-fold logistic regression on phi2 of the found labels) ...")
  cv = hm.cv_score((val if val is not None else train)["phi2"], preds[split])
  return Run(method.name, preds, cv, split, seconds, ((method.name, split),), method.arrays(state), config, {})


def train_seeds(
  method: Method,
  config,
  seeds: list[int],
  train: dict,
  val: dict | None = None,
  *,
  hooks: dict | None = None,
  say: Callable[[str], None] = print,
) -> Run:
  """The official protocol: one run per seed, the run with the best CV score, and the majority
  vote of all runs matched to it (``preds["<split>_vote"]``); per-seed scores (and metrics
  when the evaluation split has labels) in ``extra``."""
  from hume_jax.ensemble import best_and_vote

  t0 = time.perf_counter()
  states = method.fit_seeds(config, train, seeds, dict(hooks or {}, say=say))
  seconds = time.perf_counter() - t0
  all_preds = _predictions(lambda split: method.label_seeds(states, split), train, val)
  split, evaluation = _eval_split(val), (val if val is not None else train)
  say(f"computing the CV score of each of the {len(seeds)} runs ...")
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
  budget_seconds: float = 600.0,
  num_iters: int | None = None,
  watch=None,
  resume=None,
) -> tuple[Run, dict, dict | None]:
  """``hume_jax.auto.fit_auto`` on the raw spaces of ``train`` (``phi1`` is space ``a``), its
  labels (the vote) of each split, and the splits in the chosen order: ``(run, train, val)``
  with ``phi1``/``phi2`` swapped when the search kept ``phi2`` as HUME's phi1. ``watch`` and
  ``resume`` are ``fit_auto``'s (``hume_jax.auto.Watch``, ``Resume``)."""
  from hume_jax.auto import Resume, Watch, fit_auto

  watch, resume = watch or Watch(), resume or Resume()
  watch = watch._replace(names=watch.names or {"a": "phi1", "b": "phi2"})
  t0 = time.perf_counter()
  res = fit_auto(
    train["phi1"],
    train["phi2"],
    config.k,
    budget_seconds=budget_seconds,
    seed=config.seed,
    config=config,
    num_iters=num_iters,
    watch=watch,
    resume=resume,
  )
  seconds = time.perf_counter() - t0 + resume.spent_seconds
  return auto_run(res, train, val, seconds, watch)


def auto_run(res, train: dict, val: dict | None, seconds: float, watch=None) -> tuple[Run, dict, dict | None]:
  """The ``Run`` of a ``hume_jax.auto.AutoResult``: its vote's labels of each split, the CV score,
  and the splits in the chosen order (``phi1``/``phi2`` swapped when the search kept ``phi2``)."""
  from hume_jax.auto import Watch, result_arrays, vote_labels

  watch = watch or Watch(names={"a": "phi1", "b": "phi2"})
  preds = _predictions(lambda split: vote_labels(res, split["phi1"], split["phi2"]), train, val)
  if res.order == ("b", "a"):  # the vote reads the raw spaces in the given order, so it comes first
    train, val = (None if d is None else {**d, "phi1": d["phi2"], "phi2": d["phi1"]} for d in (train, val))
  split = _eval_split(val)
  watch.say("computing the CV score (10-fold logistic regression on phi2 of the found labels) ...")
  cv = hm.cv_score((val if val is not None else train)["phi2"], preds[split])
  extra = {"auto": _auto_report(res, watch.names)}
  rows = (("HUME (auto)", split),)
  run = Run("HUME (auto)", preds, cv, split, seconds, rows, result_arrays(res, watch.names), res.config, extra)
  return run, train, val


def _auto_report(res, names: dict) -> dict:
  """``metrics.json``'s ``auto``: the order kept, the criterion, every candidate, the vote, the plan
  and the premise's measurements, with the spaces named as the caller names them."""
  labels = (
    "majority vote of the runs, matched to the kept run"
    if res.vote["used"]
    else "the kept run (the vote left a class empty)"
  )
  return {
    "phi1": names[res.order[0]],
    "phi2": names[res.order[1]],
    "criterion": "separability: chance-corrected 5-fold CV score (kappa) of the labeling in each "
    "conditioned space, averaged (label-free)",
    "candidates": [{**c, "phi1": names[c["phi1"]], "phi2": names[c["phi2"]]} for c in res.candidates],
    "labels": labels,
    "vote": res.vote,
    "plan": res.plan,
    "premise": {f"k-means of {names[s[-1]]}": {names[t]: v for t, v in d.items()} for s, d in res.premise.items()},
  }


def summarize(run: Run, train: dict, val: dict | None, premise: bool = True) -> dict:
  """``metrics.json``: the CV score, the class counts of every split (and ACC/NMI/ARI where the
  split has labels), the run's extra entries and (``premise``) the label-free check of whether
  the representations favour the labeling found (``hume_jax.premise``)."""
  results = {"cv_score": run.cv_score, "cv_split": run.cv_split, "train_seconds": run.seconds, "splits": {}}
  for split, pred in run.preds.items():
    sizes = hm.cluster_sizes(pred, run.config.k)
    entry = {
      "n": int(len(pred)),
      "cluster_sizes": sizes,
      "nonempty_classes": sum(s > 0 for s in sizes),
      "smallest_class": min(sizes),
    }
    y = (val if split.startswith("val") else train)["labels"]
    if y is not None:
      entry.update(hm.evaluate(pred, y))
    results["splits"][split] = entry
  results.update(run.extra)
  if premise:
    from hume_jax.premise import premise_report

    evaluation = val if run.cv_split == "val" else train
    reported = run.preds.get(f"{run.cv_split}_vote", run.preds[run.cv_split])
    results["premise"] = premise_report(evaluation["phi1"], evaluation["phi2"], reported, run.config.k)
  return results


def table_rows(run: Run, results: dict) -> dict[str, dict]:
  """``{row label: metrics}`` of the run's rows, for a results table (splits with labels)."""
  return {label: results["splits"][split] for label, split in run.rows if "acc" in results["splits"][split]}


METHODS = {"hume": HUME_METHOD, "turtle": TURTLE_METHOD}
