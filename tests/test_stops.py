"""Stops the way real machines send them, budgets that hold, and mistakes refused before any work."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import cone, planted

from hume_jax import HumeConfig, Stopped, fit, train
from hume_jax.search.auto import Clock, replan

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
  "--seed",
  "7",
  "--no-plots",
  "--no-baselines",
]


@pytest.fixture
def files(tmp_path):
  phi1, phi2, y = planted()
  np.save(tmp_path / "phi1.npy", phi1)
  np.save(tmp_path / "phi2.npy", phi2)
  np.save(tmp_path / "y.npy", y)
  return ["--phi1", str(tmp_path / "phi1.npy"), "--phi2", str(tmp_path / "phi2.npy")]


def _wait_for(path, proc, seconds=120):
  deadline = time.time() + seconds
  while not os.path.exists(path) and proc.poll() is None and time.time() < deadline:
    time.sleep(0.05)
  assert os.path.exists(path), proc.communicate()[1][-2000:]


def test_the_loop_stops_within_an_iteration_with_a_checkpoint():
  phi1, phi2, _ = planted()
  saved, asked = [], iter([False, False, True])
  with pytest.raises(Stopped) as e:
    fit(
      phi1,
      phi2,
      HumeConfig(k=4, num_iters=50, num_subsets=2, subset_size=300, adaptation_steps=5),
      progress=False,
      stop=lambda: next(asked),
      on_checkpoint=saved.append,
      checkpoint_every=100,
    )
  assert e.value.iteration == 3 and [int(s.step) for s in saved] == [3]


def test_a_signal_outside_the_training_loops_stops_at_once_and_inside_one_after_its_iteration():
  """The command line's training phase runs inside ``interrupting()``: a stage outside the loops
  (conditioning, k-means starts, criteria, refinement) is stopped at once; a loop finishes its
  iteration and checkpoints it."""
  from hume_jax.training.stopping import stop_on_signals

  with stop_on_signals() as stop:
    with pytest.raises(Stopped), stop.interrupting():
      t0 = time.perf_counter()
      os.kill(os.getpid(), signal.SIGTERM)
      while time.perf_counter() - t0 < 60:  # a long stage in Python
        pass
    assert time.perf_counter() - t0 < 10
  phi1, phi2, _ = planted()
  saved = []
  with stop_on_signals() as stop, stop.interrupting():
    with pytest.raises(Stopped) as e:
      fit(
        phi1,
        phi2,
        HumeConfig(k=4, num_iters=50, num_subsets=2, subset_size=300, adaptation_steps=5),
        progress=False,
        stop=stop,
        on_estimate=lambda *_: os.kill(os.getpid(), signal.SIGTERM),  # during iteration 2's bookkeeping
        on_checkpoint=saved.append,
        checkpoint_every=100,
      )
  assert e.value.iteration == 2 and [int(s.step) for s in saved] == [2]


def test_a_deadline_cuts_the_loop_and_says_so():
  phi1, phi2, _ = planted()
  estimates = []
  state, log = fit(
    phi1,
    phi2,
    HumeConfig(k=4, num_iters=10_000, num_subsets=2, subset_size=300, adaptation_steps=5),
    progress=False,
    deadline=time.perf_counter() + 3.0,
    log_every=10_000,
    on_estimate=lambda s, left: estimates.append((s, left)),
  )
  assert 2 < int(state.step) < 10_000 and log[-1]["cut"] and log[-1]["iteration"] == int(state.step)
  assert len(estimates) == 1 and estimates[0][0] > 0 and estimates[0][1] == 10_000 - 2


def test_replanning_against_the_clock_cuts_iterations_then_runs():
  plan = {"num_iters": 300, "criterion_seconds": 1.0, "cuts": []}
  plan, iters, deadline, fits = replan(plan, Clock(100.0), runs_left=4, step_s=0.05, say=lambda s: None)
  assert iters == 300 and fits == 4 and plan["cuts"] == []  # 4 x (15 s + 1 s) fit in 99 s
  plan, iters, _, fits = replan(plan, Clock(41.0), runs_left=4, step_s=0.05, say=lambda s: None)
  assert 178 <= iters <= 180 and fits == 4 and f"{iters} iterations instead of 300" in plan["cuts"][0]
  plan, iters, _, fits = replan(plan, Clock(10.0), runs_left=4, step_s=0.05, say=lambda s: None)
  assert 68 <= iters <= 70 and fits == 2 and "2 of the 4 runs left dropped" in plan["cuts"][-1]  # (4.5 - 1) / 0.05


def test_replanning_returns_a_new_plan_and_leaves_the_given_one():
  given = {"num_iters": 300, "criterion_seconds": 1.0, "cuts": []}
  plan, iters, _, fits = replan(given, Clock(10.0), runs_left=4, step_s=0.05, say=lambda s: None)
  assert given == {"num_iters": 300, "criterion_seconds": 1.0, "cuts": []}
  assert plan["num_iters"] == iters < 300 and len(plan["cuts"]) == 2 and fits == 2


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_real_signal_checkpoints_the_iteration_then_resume_is_bit_identical(files, tmp_path, sig):
  """SIGTERM (kill, Slurm, timeout) and SIGINT (also to a background job) finish the iteration in
  flight, checkpoint it and exit 128 + the signal; the resumed run equals an uninterrupted one."""
  out = str(tmp_path / "run")
  cmd = [sys.executable, "-m", "hume_jax.train"] + files + SMALL + ["--checkpoint-every", "100000"]
  proc = subprocess.Popen(
    cmd + ["--num-iters", "100000", "--out", out],
    stderr=subprocess.PIPE,
    text=True,
    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
  )  # as a shell's background job
  _wait_for(os.path.join(out + ".partial", "log.jsonl"), proc)
  time.sleep(1.0)
  proc.send_signal(sig)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 128 + sig, err[-2000:]
  assert f"interrupted ({signal.Signals(sig).name}); checkpoint in" in err and "--resume" in err
  with np.load(os.path.join(out + ".partial", "checkpoint.npz")) as f:
    step = int(f[f"leaf_{list(f['names']).index('.step')}"])
  assert step >= 1  # the iteration it stopped at, not the last periodic checkpoint (there was none)
  n = str(step + 3)
  runs = [
    subprocess.Popen(cmd + ["--num-iters", n, "--out", o] + extra, stderr=subprocess.PIPE, text=True)
    for o, extra in ((out, ["--resume"]), (str(tmp_path / "full"), []))
  ]  # side by side
  for p in runs:
    assert p.wait(timeout=300) == 0, p.communicate()[1][-2000:]
  ours, theirs = (np.load(os.path.join(o, "task_encoder.npz"))["raw"] for o in (out, str(tmp_path / "full")))
  np.testing.assert_array_equal(ours, theirs)


def test_a_second_signal_stops_at_once(tmp_path):
  rng = np.random.default_rng(0)  # iterations of about a second, so that the second signal comes within one
  np.save(tmp_path / "a.npy", rng.normal(size=(5000, 64)).astype(np.float32))
  np.save(tmp_path / "b.npy", rng.normal(size=(5000, 512)).astype(np.float32))
  out = str(tmp_path / "run")
  cmd = [
    sys.executable,
    "-m",
    "hume_jax.train",
    "--phi1",
    str(tmp_path / "a.npy"),
    "--phi2",
    str(tmp_path / "b.npy"),
    "--preset",
    "official",
    "--k",
    "4",
    "--num-subsets",
    "4",
    "--subset-size",
    "5000",
    "--adaptation-steps",
    "100",
    "--num-iters",
    "100000",
    "--log-every",
    "1",
    "--quiet",
    "--no-plots",
    "--out",
    out,
  ]
  proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
  log = os.path.join(out + ".partial", "log.jsonl")
  deadline = time.time() + 120
  while proc.poll() is None and time.time() < deadline and not (os.path.exists(log) and os.path.getsize(log)):
    time.sleep(0.05)  # past the compile: an iteration logged, the main thread now waits on the next one
  proc.send_signal(signal.SIGTERM)
  time.sleep(0.2)
  proc.send_signal(signal.SIGTERM)
  proc.communicate(timeout=60)
  assert proc.returncode == -signal.SIGTERM  # killed by the second signal, not stopped after the iteration
  assert not os.path.exists(out)


def test_auto_keeps_each_finished_run_and_resumes_to_the_same_labels(tmp_path):
  phi1, phi2, y = cone()
  np.save(tmp_path / "a.npy", phi1)
  np.save(tmp_path / "b.npy", phi2)
  cmd = [
    sys.executable,
    "-m",
    "hume_jax.train",
    "--phi1",
    str(tmp_path / "a.npy"),
    "--phi2",
    str(tmp_path / "b.npy"),
    "--k",
    "4",
    "--num-iters",
    "150",
    "--quiet",
    "--no-plots",
  ]
  out = str(tmp_path / "run")
  proc = subprocess.Popen(cmd + ["--out", out], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  _wait_for(os.path.join(out + ".partial", "parts", "auto_0.npz"), proc)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 128 + signal.SIGTERM and "finished runs are kept" in err, err[-2000:]
  other = subprocess.run(cmd + ["--out", out, "--resume", "--class-sizes", "k-means"], capture_output=True, text=True)
  assert other.returncode != 0 and "trained with no --class-sizes, this command gives --class-sizes k-means" in (
    other.stderr
  ), other.stderr[-2000:]
  runs = [
    subprocess.Popen(cmd + ["--out", o] + extra, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for o, extra in ((out, ["--resume"]), (str(tmp_path / "full"), []))
  ]  # side by side
  outputs = [p.communicate(timeout=300) for p in runs]
  assert all(p.returncode == 0 for p in runs), outputs[0][1][-2000:] + outputs[1][1][-2000:]
  assert "finished runs kept from before" in outputs[0][0]
  np.testing.assert_array_equal(
    np.load(os.path.join(out, "labels_train.npy")), np.load(os.path.join(tmp_path, "full", "labels_train.npy"))
  )


@pytest.mark.parametrize(
  "extra, message",
  [
    (["--out", "FILE"], "is a file, expected a folder"),
    (["--out", "FILE/sub"], "is a file, so no folder can be made under it"),
    (["--budget", "-5"], "--budget: expected a positive number of seconds"),
    (["--checkpoint-every", "0"], "--checkpoint-every: expected a positive integer"),
    (["--seeds", "0"], "--seeds: expected a positive integer"),
    (["--k-range", "5:3"], "--k-range: expected 2 <= LO <= HI"),
    (["--budget", "60"], "--budget applies to --preset auto"),
    (["--k-range", "2:5"], "--k-range applies with --k auto"),
    (["--seed-chunk", "2"], "--seed-chunk applies with --seeds N"),
    (["--setting", "transductive"], "--setting needs a val split"),
    (["--coordinator", "h:1"], "--coordinator applies with --distributed"),
  ],
)
def test_mistakes_are_refused_in_one_line_before_any_work(files, tmp_path, capsys, extra, message):
  (tmp_path / "FILE").write_text("a user's file")
  args = files + SMALL + ["--num-iters", "5"] + [str(tmp_path / a) if a.startswith("FILE") else a for a in extra]
  if "--out" not in extra:
    args += ["--out", str(tmp_path / "r")]
  with pytest.raises(SystemExit) as e:
    train.main(args)
  text = str(e.value) + capsys.readouterr().err
  assert message in text and "Traceback" not in text
  assert (tmp_path / "FILE").read_text() == "a user's file" and not os.path.exists(tmp_path / "r.partial")


def test_flags_that_auto_or_turtle_would_ignore_are_refused(files, tmp_path):
  raw = [a for a in files]
  for extra, message in (
    (["--no-normalize-phi1"], "--no-normalize-phi1 does not apply"),
    (["--checkpoint-every", "5"], "does not apply to --preset auto"),
    (["--budget", "9", "--num-iters", "5"], "does not apply with --num-iters"),
  ):
    with pytest.raises(SystemExit, match=message):
      train.main(raw + ["--k", "4", "--quiet", "--out", str(tmp_path / "r")] + extra)


def test_user_data_without_k_says_which_k_and_how_to_choose(files, tmp_path, capsys):
  train.main(files + [a for a in SMALL if a not in ("--k", "4")] + ["--num-iters", "3", "--out", str(tmp_path / "r")])
  assert "note: --k not given: K = 10 classes" in capsys.readouterr().out


def test_class_names_of_an_extraction_file_reach_the_run(tmp_path):
  phi1, phi2, y = planted()
  meta = json.dumps({"class_names": ["ant", "bee", "cat", "dog"]})
  np.savez(tmp_path / "a.npz", features=phi1, labels=y, indices=np.arange(len(y)), meta=np.array(meta))
  np.savez(tmp_path / "b.npz", features=phi2, labels=y, indices=np.arange(len(y)), meta=np.array(meta))
  train.main(
    [
      "--phi1",
      str(tmp_path / "a.npz"),
      "--phi2",
      str(tmp_path / "b.npz"),
      "--labels",
      str(tmp_path / "a.npz"),
      "--out",
      str(tmp_path / "r"),
    ]
    + SMALL
    + ["--num-iters", "3"]
  )
  assert json.load(open(tmp_path / "r" / "config.json"))["class_names"] == ["ant", "bee", "cat", "dog"]


def test_sigterm_after_training_keeps_the_trained_state_and_the_resume_writes_the_results(files, tmp_path):
  """A stop in the stages after training (here as the premise check starts) is handled as one in
  training: exit 143, the trained state kept, the resume command printed; it then evaluates and writes."""
  import shlex

  out = str(tmp_path / "run")
  loud = [a for a in SMALL if a != "--quiet"]
  cmd = [sys.executable, "-m", "hume_jax.train"] + files + loud + ["--num-iters", "20", "--out", out]
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  for line in proc.stdout:
    if line.startswith("computing the premise check"):
      proc.send_signal(signal.SIGTERM)
      break
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
  assert "interrupted (SIGTERM); checkpoint in" in err and not os.path.exists(os.path.join(out, "metrics.json"))
  resume = shlex.split(err.split("Continue with:\n")[1].strip().splitlines()[0])
  done = subprocess.run(resume, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  metrics = json.load(open(os.path.join(out, "metrics.json")))
  assert "premise" in metrics and json.load(open(os.path.join(out, "config.json")))
