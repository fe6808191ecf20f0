"""Train HUME from the command line: ``python -m hume_jax.train --help``.

The command line only translates: flags become values (``flags.py``), files become splits
(``inputs.py``), a ``hume_jax.runs`` protocol trains, the output folder's life is
``hume_jax.io.workdir``, and ``report.py`` prints and draws. ``main`` reads top to bottom.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import sys
import tempfile
import time

if getattr(sys.modules.get("hume_jax"), "__file__", None) is None:  # a namespace package: a folder hides hume_jax
  _shadow = os.path.relpath(next(iter(sys.modules["hume_jax"].__path__), "hume_jax"))
  raise SystemExit(
    f"error: the folder {_shadow} (a clone of this repository? it has no __init__.py) hides the package hume_jax "
    f"({os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}): its sub-folders, such as the runs/ a run "
    f"writes, would stand for the package's modules. Run the command inside it (cd {_shadow}) or from another folder"
  )

import jax  # noqa: E402

from hume_jax import runs  # noqa: E402  (after the check above)
from hume_jax.evaluation.baselines import run_baselines  # noqa: E402
from hume_jax.io.checkpoint import data_fingerprint  # noqa: E402
from hume_jax.io.workdir import Workdir, command, resume_command, versions  # noqa: E402
from hume_jax.search.budget import DEFAULT_BUDGET, K_AUTO_BUDGET, K_AUTO_SHARE  # noqa: E402
from hume_jax.train import inputs, report, resume  # noqa: E402
from hume_jax.train.checks import check_flags_apply, check_method_flags  # noqa: E402
from hume_jax.train.flags import build_parser  # noqa: E402
from hume_jax.train.flags import resolve_config as resolve_config  # noqa: E402  (re-exported: tests and users call it)
from hume_jax.training.hooks import Hooks  # noqa: E402
from hume_jax.training.memory import device_memory_bytes, plan_memory  # noqa: E402
from hume_jax.training.stopping import stop_on_signals  # noqa: E402

DEFAULTS = {"budget": DEFAULT_BUDGET, "k_range": (2, 20), "k_seeds": 3, "checkpoint_every": 50, "log_every": 10}


def main(argv: list[str] | None = None) -> dict:
  # -- parse ----------------------------------------------------------------------------------
  started = time.perf_counter()
  args = build_parser().parse_args(argv)
  if args.distributed:
    _start_distributed(args)
  # -- inputs, config and output: every check before any work -----------------------------------
  try:
    check_method_flags(args)
    train, val, name, class_names = inputs.load_inputs(args)
    mode, config = inputs.configure(args, train, name)
    check_flags_apply(args, mode, val is not None)
    out_given = args.out is not None
    wd = Workdir(args.out or os.path.join("runs", f"{name}-{datetime.datetime.now():%Y%m%d-%H%M%S}"))
    wd.check(resume=args.resume, overwrite=args.overwrite)
    train, val, labeled = inputs.splits(args, mode, train, val, name)
    images = inputs.load_images(args, name, len((val or train)["phi1"]))
    wd.prepare(resume=args.resume)
  except (ValueError, KeyError, FileNotFoundError) as e:
    raise SystemExit(f"error: {e.args[0] if e.args else e}")
  if mode.auto_k and args.budget is None:
    args.budget = K_AUTO_BUDGET
  for key, value in DEFAULTS.items():
    setattr(args, key, value if getattr(args, key) is None else getattr(args, key))
  _notes(args, mode, config, train, name)
  # -- plan -----------------------------------------------------------------------------------
  report.banner(mode.method.name, name, train, val, f"{jax.devices()[0].platform} ({versions()['device']})")
  report.config_line(mode, config, args.budget)
  mode = mode._replace(execution=_memory_plan(args, mode, config, train))
  # -- run ------------------------------------------------------------------------------------
  with stop_on_signals() as stop:  # a stop is acted on in training and at each stage after it
    try:
      with stop.interrupting():  # a stop outside the training loops acts at once (hume_jax.training.stopping)
        run, train, val, k_selection = _train(args, mode, config, train, val, wd, stop)
      stop.check()
      # -- write: the trained state is kept; a stop here leaves it for --resume to evaluate -----
      splits, dataset = (train, val, labeled), (name, class_names)
      results, table, page = _write(args, mode, run, splits, k_selection, wd, images, dataset, argv, stop)
      stop.check()
    except KeyboardInterrupt:
      raise _interrupted(wd, stop, resume_command(argv, wd.out, out_given)) from None
    except (FloatingPointError, ValueError) as e:
      raise _failed(wd, e) from None
  wd.commit()
  # -- report ---------------------------------------------------------------------------------
  elapsed = time.perf_counter() - started
  budget = args.budget if "budget" in results.get("auto", {}) else None  # the whole --budget (K auto's included)
  report.final(results, run.config.k, table, len((val or train)["phi1"]), wd.out, page, elapsed, budget)
  return results


def _write(args, mode, run, splits: tuple, k_selection, wd: Workdir, images, dataset: tuple, argv, stop) -> tuple:
  """After training: ``metrics.json`` (the premise check with it), the baselines, the figures and
  ``report.html``, each announced unless ``--quiet``, the spaces called by their flags and files
  (``report.space_names``) in their roles after any swap. ``splits`` is ``(train, val, labeled)``,
  ``dataset`` ``(name, class names)``; ``stop`` (``hume_jax.training.stopping.StopRequest``) is checked as each
  stage starts. Returns ``(results, table or None, report.html or None)``."""
  (train, val, labeled), (name, class_names) = splits, dataset
  announce = (lambda line: None) if args.quiet else (lambda line: print(line, flush=True))
  say = lambda line: (stop.check(), announce(line))  # each stage starts by acting on a stop (SIGTERM, Ctrl-C)
  swapped = run.extra.get("auto", {}).get("swapped", False)  # the search kept --phi2 as phi1: splits swapped
  names = report.space_names(args, swapped)
  results = runs.summarize(run, train, val, names=names, say=say)
  given = args.class_sizes
  results["class_size_source"] = given if isinstance(given, str) else ("given" if given else None)
  if k_selection is not None:
    results["k_selection"] = k_selection._asdict()
  if swapped:
    labeled = {**labeled, "phi1": labeled["phi2"], "phi2": labeled["phi1"]}
  table = _table_with_baselines(args, run, results, labeled, val, train, names, say)
  wd.write(run.arrays, run.preds, results, _record(args, mode, run, name, class_names, argv))
  if args.plots:
    say("drawing the figures (2-D map, confusion matrix, training curves) ...")
    entropy = report.entropy_max(mode.method, run.config.k, getattr(run.config, "prior", None))
    report.plots(wd.partial, run, train, val, k_selection, images, class_names, entropy, names=names)
  return results, table, report.html(wd.partial, images, shown_as=wd.out, say=say)


def _record(args, mode, run, name: str, class_names, argv) -> dict:
  """``config.json``: every hyperparameter, the inputs, the command, the seed and the versions."""
  return {
    mode.method.name.lower(): dataclasses.asdict(run.config),
    **({"execution": dataclasses.asdict(mode.execution)} if mode.method is runs.HUME_METHOD else {}),
    "preset": mode.preset,
    "dataset": name,
    "seeds": args.seeds,
    "inputs": {a: getattr(args, a) for a in ("phi1", "phi2", "labels", "phi1_val", "phi2_val", "labels_val")},
    "class_names": class_names,
    "normalize_phi1": args.normalize_phi1,
    "command": command(argv),
    "versions": versions(),
  }


def _failed(wd: Workdir, e: Exception) -> SystemExit:
  """A run that cannot go on: the reason, and for a diverged loss where the last good state is. The
  folder's lock is released (a later run in this process may take it)."""
  wd.release()
  if not isinstance(e, FloatingPointError):
    return SystemExit(f"error: {e}")
  kept = f"last good checkpoint: {wd.checkpoint}" if os.path.exists(wd.checkpoint) else "no checkpoint yet"
  return SystemExit(f"error: {e}\n{kept}; log: {os.path.join(wd.partial, 'log.jsonl')}")


def _start_distributed(args) -> None:
  jax.config.update("jax_cpu_collectives_implementation", "gloo")  # for CPU devices; GPUs use NCCL
  jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
  if jax.process_index() != 0:  # same computation, replicated results: only process 0 keeps them
    args.out, args.overwrite, args.resume = tempfile.mkdtemp(prefix="hume-process-"), True, False
    args.quiet, args.plots, args.baselines = True, False, False


def _notes(args, mode, config, train: dict, name: str) -> None:
  """What a user should know before a run that the flags do not say."""
  if args.k is None and name != "fashion_mnist":
    print(
      f"note: --k not given: K = {config.k} classes (pass --k with your number of classes, or --k auto to "
      "choose it from the data without labels)"
    )
  if mode.method is runs.HUME_METHOD and config.subset_size > len(train["phi1"]):
    print(
      f"note: subset size {config.subset_size} > n = {len(train['phi1'])}: each subset is all "
      f"{len(train['phi1'])} rows (as the official code clips it)"
    )


def _memory_plan(args, mode, config, train):
  """How HUME's steps run (``mode.execution``), with remat / subset chunks if its compiled step would not fit
  the device's memory."""
  given = args.remat is not None or args.subset_chunk is not None
  if mode.method is not runs.HUME_METHOD or mode.budgeted or given:
    return mode.execution

  budget = device_memory_bytes()
  # Plan the program that is compiled: --seeds vmaps a chunk of runs; --k auto vmaps --k-seeds
  # runs per K, the largest at the top of --k-range.
  runs_ = (args.seed_chunk or args.seeds) if args.seeds > 1 else (args.k_seeds if mode.k_auto else 1)
  largest = dataclasses.replace(config, k=args.k_range[1]) if mode.k_auto else config
  try:
    n, d1, d2 = len(train["phi1"]), train["phi1"].shape[1], train["phi2"].shape[1]
    planned, peak = plan_memory(largest, n, d1, d2, budget, runs=runs_, execution=mode.execution)
  except MemoryError as e:
    raise SystemExit(f"error: {e}")
  if planned == mode.execution:
    return planned
  print(
    f"memory: one outer step would not fit in {budget / 2**30:.1f} GiB; using --remat"
    + (f" --subset-chunk {planned.subset_chunk}" if planned.subset_chunk else "")
    + f" ({peak / 2**30:.1f} GiB, same result)"
  )
  return planned


def _train(args, mode, config, train, val, wd: Workdir, stop):
  """The protocol the flags ask for, looked up by name (``resume.K_SEARCHES``, ``resume.PROTOCOLS``):
  first K when it is to be chosen, then the training of that K; returns ``(run, train, val, K selection
  or None)`` (auto may swap phi1 and phi2 of the splits)."""
  data_id = data_fingerprint(train["phi1"], train["phi2"])
  hooks = Hooks(progress=not args.quiet, stop=stop, log_every=args.log_every, checkpoint_every=args.checkpoint_every)
  k_selection = None
  if mode.k_search is not None:
    k_args, args = _k_budget(args, mode)
    k_selection = resume.K_SEARCHES[mode.k_search](k_args, mode, config, train, val, wd, data_id, hooks)
    config = dataclasses.replace(config, k=k_selection.chosen_k)
  run, train, val = resume.PROTOCOLS[mode.protocol](args, mode, config, train, val, wd, data_id, hooks)
  return run, train, val, k_selection


def _k_budget(args, mode) -> tuple[argparse.Namespace, argparse.Namespace]:
  """``(flags of the search over K, flags of the chosen K's training)``: under ``--preset auto`` fixed shares of
  ``--budget`` (no clock), the search over K's, then the chosen K's full search; otherwise the same flags."""
  if not mode.auto_k:
    return args, args
  share = lambda part: argparse.Namespace(**{**vars(args), "budget": args.budget * part})
  return share(K_AUTO_SHARE), share(1 - K_AUTO_SHARE)


def _interrupted(wd: Workdir, stop, command_line: str) -> SystemExit:
  """The exit of a stopped run: what was kept and the command that continues it; the status is
  128 + the signal's number (130 for Ctrl-C) as a shell reports a process killed by it. The folder's
  lock is released."""
  wd.release()
  why = f"interrupted ({stop.name})" if stop() else "interrupted"
  if os.path.exists(wd.checkpoint):
    message = f"\n{why}; checkpoint in {wd.checkpoint}. Continue with:\n  {command_line}"
  elif wd.interrupted():
    message = f"\n{why}; the finished runs are kept in {wd.parts}. Continue with:\n  {command_line}"
  else:
    message = f"\n{why} before anything could be kept; run the command again"
  print(message, file=sys.stderr)
  exit_ = SystemExit(message)
  exit_.code = 128 + (stop.signum or 2)
  return exit_


def _table_with_baselines(args, run, results: dict, labeled: dict, val, train, names: dict, say) -> dict | None:
  """The results table (when the evaluated split has labels), with k-means and a linear probe, the
  spaces called by ``names``; without a val split the probe is scored by 5-fold cross-validation."""
  table = runs.table_rows(run, results)
  if not table or args.baselines is False:
    return table or None
  if labeled["labels"] is None:
    print("note: no --labels for the training split: baselines skipped")
    return table

  probe = "a linear probe on each, 5-fold cross-validated" if val is None else "a linear probe on each"
  say(f"computing baselines (k-means on each space and on both, {probe}) ...")
  evaluation = train if val is None else val
  results["baselines"] = run_baselines(
    labeled, evaluation, run.config.k, seed=run.config.seed, same_split=val is None, names=names
  )
  table.update(results["baselines"])
  return table
