"""Checkpoints and --resume: an interrupted run continues to the bit-identical result."""

import os

import numpy as np
import pytest

from hume_jax import train
from hume_jax.io import checkpoint

SMALL = [
  "--preset",
  "official",
  "--k",
  "4",
  "--num-subsets",
  "2",
  "--subset-size",
  "300",
  "--adaptation-steps",
  "10",
  "--inner-lr",
  "0.05",
  "--outer-lr",
  "0.01",
  "--quiet",
  "--log-every",
  "5",
  "--seed",
  "7",
]


def _raw(out):
  return np.load(os.path.join(out, "task_encoder.npz"))["raw"]


def _interrupt_at_10(monkeypatch, argv):
  """Runs the CLI with ``argv`` and presses Ctrl-C right after the checkpoint at iteration 10."""
  real_save = checkpoint.save_checkpoint

  def save_then_interrupt(path, state, config, data_id):
    real_save(path, state, config, data_id)
    if int(state.step) == 10:
      raise KeyboardInterrupt

  monkeypatch.setattr(checkpoint, "save_checkpoint", save_then_interrupt)
  with pytest.raises(SystemExit, match="(?s)interrupted; checkpoint in .*--resume"):
    train.main(argv)
  monkeypatch.setattr(checkpoint, "save_checkpoint", real_save)


def test_interrupted_at_10_resumed_to_20_is_bit_identical(files, tmp_path, monkeypatch):
  full = str(tmp_path / "full")
  train.main(files + SMALL + ["--num-iters", "20", "--out", full])

  out = str(tmp_path / "cut")
  _interrupt_at_10(monkeypatch, files + SMALL + ["--num-iters", "20", "--out", out, "--checkpoint-every", "10"])
  assert not os.path.exists(out) and os.path.exists(os.path.join(out + ".partial", "checkpoint.npz"))

  with pytest.raises(SystemExit, match="holds an interrupted run"):  # nothing is lost by mistake
    train.main(files + SMALL + ["--num-iters", "20", "--out", out])
  train.main(files + SMALL + ["--num-iters", "20", "--out", out, "--resume"])
  np.testing.assert_array_equal(_raw(out), _raw(full))
  np.testing.assert_array_equal(
    np.load(os.path.join(out, "labels_train.npy")), np.load(os.path.join(full, "labels_train.npy"))
  )
  iterations = [int(line.split('"iteration": ')[1].split(",")[0]) for line in open(os.path.join(out, "log.jsonl"))]
  assert iterations == [5, 10, 15, 20]


def test_resume_rejects_other_settings_and_data(files, tmp_path, monkeypatch):
  real_save = checkpoint.save_checkpoint

  def save_then_interrupt(*args):
    real_save(*args)
    raise KeyboardInterrupt

  out = str(tmp_path / "cut")
  monkeypatch.setattr(checkpoint, "save_checkpoint", save_then_interrupt)
  with pytest.raises(SystemExit):
    train.main(files + SMALL + ["--num-iters", "20", "--out", out, "--checkpoint-every", "5"])
  monkeypatch.undo()
  with pytest.raises(SystemExit, match="no checkpoint"):
    train.main(files + SMALL + ["--out", str(tmp_path / "other"), "--resume"])
  with pytest.raises(SystemExit, match="other settings .*tau: 0.1 there, 0.5 here"):
    train.main(files + SMALL + ["--num-iters", "20", "--out", out, "--resume", "--tau", "0.5"])
  np.save(tmp_path / "phi2.npy", np.load(tmp_path / "phi2.npy") * 2)
  with pytest.raises(SystemExit, match="other input data"):
    train.main(files + SMALL + ["--num-iters", "20", "--out", out, "--resume"])


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(files, tmp_path, monkeypatch):
  import jax.numpy as jnp

  from hume_jax.training import _fit as fit_module

  real_step = fit_module.outer_step_jit

  def diverging_step(state, phi1, phi2, **kw):
    new_state, m = real_step(state, phi1, phi2, **kw)
    return new_state, m._replace(loss=jnp.where(state.step >= 6, jnp.nan, m.loss))  # iteration 7 on

  monkeypatch.setattr(fit_module, "outer_step_jit", diverging_step)
  out = str(tmp_path / "nan")
  with pytest.raises(
    SystemExit,
    match=r"(?s)non-finite HUME loss \(nan\) at iteration 7; the last finite "
    r"state checked is from iteration 6.*last good checkpoint: .*checkpoint.npz",
  ):
    train.main(files + SMALL + ["--num-iters", "20", "--out", out, "--checkpoint-every", "5", "--log-every", "1"])
  with np.load(os.path.join(out + ".partial", "checkpoint.npz")) as f:
    assert int(f[f"leaf_{list(f['names']).index('.step')}"]) == 5
  assert len(open(os.path.join(out + ".partial", "log.jsonl")).readlines()) == 6
  assert not os.path.exists(out)


TURTLE = [
  "--method",
  "turtle",
  "--k",
  "4",
  "--inner-lr",
  "0.05",
  "--outer-lr",
  "0.01",
  "--batch-size",
  "150",
  "--inner-steps",
  "3",
  "--quiet",
  "--log-every",
  "5",
  "--seed",
  "7",
  "--no-plots",
]


def test_turtle_interrupted_at_10_resumed_to_20_is_bit_identical(files, tmp_path, monkeypatch):
  """TURTLE mode keeps the same checkpoints as HUME (it once kept none: Ctrl-C lost the run)."""
  full = str(tmp_path / "full")
  train.main(files + TURTLE + ["--num-iters", "20", "--out", full])
  out = str(tmp_path / "cut")
  _interrupt_at_10(monkeypatch, files + TURTLE + ["--num-iters", "20", "--out", out, "--checkpoint-every", "10"])
  with pytest.raises(SystemExit, match="other settings .*gamma: 10.0 there, 5.0 here"):
    train.main(files + TURTLE + ["--num-iters", "20", "--out", out, "--resume", "--gamma", "5"])
  train.main(files + TURTLE + ["--num-iters", "20", "--out", out, "--resume"])
  ours, theirs = np.load(os.path.join(out, "task_encoder.npz")), np.load(os.path.join(full, "task_encoder.npz"))
  assert set(ours) == {"v1", "g1", "b1", "v2", "g2", "b2"}
  for name in ours:
    np.testing.assert_array_equal(ours[name], theirs[name])
  iterations = [int(line.split('"iteration": ')[1].split(",")[0]) for line in open(os.path.join(out, "log.jsonl"))]
  assert iterations == [5, 10, 15, 20]


def test_a_log_line_cut_off_by_a_kill_ends_the_resumed_log(tmp_path):
  from hume_jax.io.workdir import _logged_up_to

  path = tmp_path / "log.jsonl"
  path.write_text('{"iteration": 1, "loss": 0.5}\n\n{"iteration": 2, "loss": 0.4}\n{"iteration": 3, "lo')
  assert _logged_up_to(str(path), 5) == ['{"iteration": 1, "loss": 0.5}\n', '{"iteration": 2, "loss": 0.4}\n']
  assert _logged_up_to(str(path), 1) == ['{"iteration": 1, "loss": 0.5}\n']
