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
from hume_jax.search.auto import Candidate, Resume, Watch
from hume_jax.train import report
from hume_jax.training import ensemble


def train_one(args, mode, config, train: dict, val: dict | None, wd: Workdir, data_id: str, hooks: dict) -> runs.Run:
  """One run with a checkpoint every ``--checkpoint-every`` iterations and at a stop, resumed
  from it with ``--resume`` (its log kept up to the checkpoint's iteration)."""
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
    return runs.train_one(
      mode.method,
      config,
      train,
      val,
      state=state,
      hooks=dict(hooks, on_log=on_log, on_checkpoint=wd.saver(config, data_id), on_estimate=report.estimator(mode)),
    )
  finally:
    close()


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


def train_auto(args, config, train: dict, val: dict | None, wd: Workdir, data_id: str, hooks: dict):
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

  watch = Watch(progress=hooks["progress"], stop=hooks["stop"], names={"a": "--phi1", "b": "--phi2"})
  return runs.train_auto(
    config,
    train,
    val,
    budget_seconds=args.budget,
    num_iters=args.num_iters,
    watch=watch,
    resume=Resume(finished, spent, on_candidate),
    prior=args.class_sizes,
  )


def select_k(args, config, train: dict, val: dict | None, wd: Workdir, data_id: str, hooks: dict):
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
    stop=hooks["stop"],
    done=done,
    on_k=on_k,
  )


def select_k_auto(args, config, train: dict, val: dict | None, wd: Workdir, data_id: str, hooks: dict):
  """``--k auto`` under ``--preset auto`` (``hume_jax.search.kauto``): each K's scores kept as it finishes."""
  if args.resume:
    check_resumable(wd, ("k", "auto"), "--k auto with --preset auto")
  done, on_k = _k_parts(args, wd, config, data_id)

  watch = Watch(progress=hooks["progress"], stop=hooks["stop"], names={"a": "--phi1", "b": "--phi2"})
  return kauto.select_k_auto(
    train["phi1"],
    train["phi2"],
    args.k_range,
    budget_seconds=args.budget,
    seed=config.seed,
    config=config,
    num_iters=args.num_iters,
    labels=train["labels"],
    watch=watch,
    done=done,
    on_k=on_k,
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
