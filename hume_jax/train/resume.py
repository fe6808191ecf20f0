"""Each protocol of the command line composed with its output folder: a single run with its
checkpoint and log, the seeds' chunks, ``--preset auto``'s runs and ``--k auto``'s K kept as
parts, so that a stopped command continues where it stopped (``--resume``)."""

from __future__ import annotations

import os

import jax
import numpy as np

from hume_jax import runs
from hume_jax.core._outer import init_state
from hume_jax.io.workdir import Workdir
from hume_jax.search import kauto
from hume_jax.search.auto import Candidate, Resume
from hume_jax.search.budget import closing_seconds
from hume_jax.train import report
from hume_jax.training import ensemble
from hume_jax.training.hooks import Hooks


def train_one(args, mode, config, train: dict, val: dict | None, wd: Workdir, data_id: str, hooks: Hooks):
  """One run with a checkpoint every ``--checkpoint-every`` iterations and at a stop, resumed
  from it with ``--resume`` (its log kept up to the checkpoint's iteration). Returns ``(run, train, val)``."""
  template = mode.method.init(config, train)
  state, done = None, None
  if args.resume:  # after --k auto's search, its K alone may be kept (stopped before a checkpoint)
    check_resumable(wd, ("checkpoint", "k") if args.k == "auto" else ("checkpoint",), "a single run")
  if args.resume and os.path.exists(wd.checkpoint):
    state = wd.load_state(template, config, data_id)
    done = int(state.step)
    _check_within(done, config.num_iters, wd.checkpoint)
    print(f"resuming from iteration {done} ({wd.checkpoint})")
  on_log, close = wd.open_log(done)
  try:
    on_checkpoint, on_estimate = wd.saver(config, data_id), report.estimator(mode)
    loop = hooks._replace(on_log=on_log, on_checkpoint=on_checkpoint, on_estimate=on_estimate)
    run = runs.train_one(mode.method, config, train, val, state=state, execution=mode.execution, hooks=loop)
    return run, train, val
  finally:
    close()


def train_seeds(args, mode, config, train: dict, val: dict | None, wd: Workdir, data_id: str, hooks: Hooks):
  """``--seeds N``: one run per seed, each chunk of seeds kept as a part (``seed_parts``). Returns
  ``(run, train, val)``."""
  seeds = [config.seed + i for i in range(args.seeds)]
  parts = seed_parts(wd, config, data_id, args.resume)
  loop = hooks._replace(**parts, on_estimate=report.estimator(mode, "each chunk of seeds"))
  chunk, execution = args.seed_chunk, mode.execution
  return (
    runs.train_seeds(mode.method, config, seeds, train, val, chunk=chunk, execution=execution, hooks=loop),
    train,
    val,
  )


NAMES = {"a": "--phi1", "b": "--phi2"}  # how the auto search's messages name the spaces

# What each protocol keeps in OUT.partial (``Workdir.held``), for the messages of a resume.
_KEPT = {
  "checkpoint": "a single run's checkpoint",
  "seeds": "the runs of --seeds N",
  "auto": "the runs of --preset auto",
  "k": "the K of --k auto",
}


def check_resumable(wd: Workdir, kinds: tuple[str, ...], protocol: str) -> None:
  """``--resume`` continues what ``OUT.partial`` holds only with the protocol that wrote it:
  raises ``ValueError`` saying what it holds when that is another protocol's (or nothing of this
  one's), rather than training from scratch beside it."""
  held = wd.held()
  if held and held <= set(kinds):
    return
  found = ", ".join(_KEPT.get(k, k) for k in sorted(held)) or "nothing to continue"
  raise ValueError(
    f"--resume: {wd.partial} holds {found}, which this command ({protocol}) cannot continue; "
    "resume with the command that wrote it, or pass --overwrite to start again"
  )


def _check_within(done: int, num_iters: int, path: str) -> None:
  """A checkpoint past ``--num-iters`` is refused (its state is not the state at ``num_iters``)."""
  if done > num_iters:
    raise ValueError(
      f"--resume: checkpoint {path} is at iteration {done}, beyond --num-iters {num_iters}; "
      f"resume with --num-iters {done} or more, or pass --overwrite to run {num_iters} iterations from the start"
    )


def seed_parts(wd: Workdir, config, data_id: str, resume: bool) -> dict:
  """``resume_part`` / ``on_part`` hooks of ``runs.train_seeds``: each chunk of seeds (HUME) or
  seed (TURTLE) saved at its checkpoints and when finished, and read back with ``--resume``."""
  if resume:
    check_resumable(wd, ("seeds", "k"), "--seeds N")

  def resume_part(index: int, template):
    saved = wd.load_part(f"seeds_{index}", template, config, data_id) if resume else None
    if saved is None:
      return None
    done = int(np.asarray(saved[0].step).reshape(-1)[0])
    _check_within(done, config.num_iters, f"{wd.parts}/seeds_{index}.npz")
    print(f"resuming seeds part {index} from iteration {done}")
    return saved[0]

  def on_part(index: int, state, finished: bool) -> None:
    wd.save_part(f"seeds_{index}", state, config, data_id, {"finished": finished})

  return {"resume_part": resume_part, "on_part": on_part}


def train_auto(args, mode, config, train: dict, val: dict | None, wd: Workdir, data_id: str, hooks: Hooks):
  """``--preset auto``: each finished run of the search kept (its state, labels and report) and,
  with ``--resume``, reused; the run in flight at a stop starts again. Returns ``(run, train, val)``."""
  if args.resume:
    check_resumable(wd, ("k", "auto") if args.k == "auto" else ("auto",), "--preset auto")
  n = len(train["phi1"])
  finished, spent = {}, 0.0
  label_free = args.class_sizes if isinstance(args.class_sizes, str) else None  # given sizes are in config.prior
  for i in range(4) if args.resume else ():
    info = wd.part_info(f"auto_{i}")
    if info is None:
      continue
    if info.get("class_sizes") != label_free:
      was = f"--class-sizes {info['class_sizes']}" if info.get("class_sizes") else "no --class-sizes"
      raise ValueError(
        f"--resume: the interrupted search's runs were trained with {was}, this command gives "
        f"{f'--class-sizes {label_free}' if label_free else 'none'}; give the same, or start again with --overwrite"
      )
    template = (init_state(jax.random.PRNGKey(0), config, *info["dims"]), np.zeros(n, np.int64))
    (state, pred), info = wd.load_part(f"auto_{i}", template, config, data_id)
    entry = {key: v for key, v in info.items() if key not in ("dims", "class_sizes")}
    finished[i] = Candidate(entry, state, np.asarray(pred))
    spent += entry["seconds"]

  def on_candidate(i: int, candidate) -> None:  # dims: d1 of the encoder's base [d1, d1], d2 of w0.W [d2, k]
    wd.save_part(
      f"auto_{i}",
      (candidate.state, np.asarray(candidate.pred, np.int64)),
      config,
      data_id,
      {
        **candidate.entry,
        "dims": [int(candidate.state.encoder.base.shape[0]), int(candidate.state.w0.W.shape[0])],
        "class_sizes": label_free,
      },
    )

  after = _after_search(args, config, train, val)
  run, train, val = runs.train_auto(
    config,
    train,
    val,
    budget_seconds=max(args.budget - after, 0.0),
    num_iters=args.num_iters,
    hooks=Hooks(progress=hooks.progress, stop=hooks.stop, on_candidate=on_candidate),
    names=NAMES,
    resume=Resume(finished, spent),
    prior=args.class_sizes,
  )
  if args.num_iters is None:  # --num-iters: no budget applies
    run.extra["auto"]["budget"] = {"seconds": args.budget, "after_search": round(after, 1)}
  return run, train, val


def _after_search(args, config, train: dict, val: dict | None) -> float:
  """The modelled seconds of the stages after the search that ``--budget`` counts too (the CV score, the premise
  check and, with labels, the baselines: ``budget.closing_seconds``), said before training; none without a
  budget (``--num-iters``)."""
  if args.num_iters is not None:
    return 0.0
  evaluation = val if val is not None else train
  baselines = args.labels is not None and args.baselines is not False
  d2 = train["phi2"].shape[1]
  dims = train["phi1"].shape[1] + d2 if baselines else 0
  after = closing_seconds(len(evaluation["phi1"]), config.k, jax.default_backend(), d2, dims)
  stages = "the CV score, the premise check and the baselines" if baselines else "the CV score and the premise check"
  if not args.quiet:
    print(f"budget: {args.budget:.0f} s; about {after:.0f} s of it kept for {stages} after the search")
  return after


def select_k(args, mode, config, train: dict, val: dict | None, wd: Workdir, data_id: str, hooks: Hooks):
  """``--k auto``: every K's scores kept as it finishes and reused with ``--resume`` (the K in
  flight at a stop starts again)."""
  if args.resume:
    check_resumable(wd, ("k", "checkpoint", "seeds"), "--k auto")
  evaluation = val if val is not None else train
  done, on_k = _k_parts(args, wd, config, data_id)

  seeds = [config.seed + i for i in range(args.k_seeds)]
  return ensemble.select_k(
    train["phi1"],
    train["phi2"],
    config,
    args.k_range,
    seeds,
    phi1_eval=evaluation["phi1"],
    phi2_eval=evaluation["phi2"],
    labels_eval=evaluation["labels"],
    done=done,
    execution=mode.execution,
    hooks=Hooks(stop=hooks.stop, on_k=on_k),
  )


def select_k_auto(args, mode, config, train: dict, val: dict | None, wd: Workdir, data_id: str, hooks: Hooks):
  """``--k auto`` under ``--preset auto`` (``hume_jax.search.kauto``): each K's scores kept as it finishes."""
  if args.resume:
    check_resumable(wd, ("k", "auto"), "--k auto with --preset auto")
  done, on_k = _k_parts(args, wd, config, data_id)

  return kauto.select_k_auto(
    train["phi1"],
    train["phi2"],
    args.k_range,
    budget_seconds=args.budget,
    seed=config.seed,
    config=config,
    num_iters=args.num_iters,
    labels=train["labels"],
    done=done,
    hooks=Hooks(progress=hooks.progress, stop=hooks.stop, on_k=on_k),
  )


def _k_parts(args, wd: Workdir, config, data_id: str):
  """``(scores of each K kept before (with --resume), on_k)``: every K's scores as a part."""
  done = {}
  for k in range(args.k_range[0], args.k_range[1] + 1) if args.resume else ():
    saved = wd.load_part(f"k_{k}", np.asarray(k), config, data_id)
    if saved is not None:
      done[k] = saved[1]

  def on_k(k: int, entry: dict) -> None:
    wd.save_part(f"k_{k}", np.asarray(k), config, data_id, entry)

  return done, on_k


# The command line's protocols as values (``hume_jax.train.checks.Mode.k_search`` / ``Mode.protocol`` name
# them): how K is chosen, ``(args, mode, config, train, val, wd, data_id, hooks) -> KSelection``, and how a K
# is trained, ``(args, mode, config, train, val, wd, data_id, hooks) -> (run, train, val)`` (auto may swap the
# splits' spaces). Each keeps what it finished in the output folder, for ``--resume``.
K_SEARCHES = {"seeds": select_k, "auto": select_k_auto}
PROTOCOLS = {"one": train_one, "seeds": train_seeds, "auto": train_auto}
