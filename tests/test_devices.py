"""Subsets split over several devices give the result of one device (2 forced CPU devices)."""

import os
import subprocess
import sys

import numpy as np
import pytest

# Runs in a process of its own, where XLA is told to make several CPU devices.
SCRIPT = """
import sys, numpy as np, jax
jax.config.update("jax_enable_x64", True)
sys.path.insert(0, {tests!r})
import test_devices
for chunk in {chunks!r}:
  np.save({out!r}.format(chunk), test_devices.encoder_of(chunk))
if {seeds!r}:
  states = test_devices.seed_runs()
  np.save({out!r}.format("seeds"), np.asarray(states.encoder.raw))
  print(len(states.encoder.raw.sharding.device_set))  # the last chunk lives on that many devices
print(jax.device_count())
"""


def encoder_of(chunk):
  """The trained encoder of the planted data with ``chunk`` subsets at a time (0: the plan's)."""
  from conftest import planted

  from hume_jax import Execution, HumeConfig, fit

  phi1, phi2, _ = planted()
  cfg = HumeConfig(k=4, num_iters=4, num_subsets=4, subset_size=300, adaptation_steps=10, inner_lr=0.05, outer_lr=0.01)
  state, _ = fit(phi1, phi2, cfg, execution=Execution(subset_chunk=chunk), progress=False)
  return np.asarray(state.encoder.raw)


def seed_runs():
  """Four seeds trained two at a time by ``fit_seeds`` (each chunk split over the devices)."""
  from conftest import planted

  from hume_jax import HumeConfig
  from hume_jax.training.ensemble import fit_seeds

  phi1, phi2, _ = planted()
  cfg = HumeConfig(k=4, num_iters=3, num_subsets=2, subset_size=300, adaptation_steps=5, inner_lr=0.05, outer_lr=0.01)
  return fit_seeds(phi1, phi2, cfg, [3, 4, 5, 6], chunk=2, progress=False)


def _run(tmp_path, devices, chunks=(0,), seeds=False):
  """``encoder_of`` each chunk size (and ``seed_runs``' encoders) on ``devices`` forced CPU
  devices, in one new process."""
  out = str(tmp_path / f"raw_{devices}_{{}}.npy")
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
  code = SCRIPT.format(tests=os.path.dirname(__file__), out=out, chunks=tuple(chunks), seeds=seeds)
  res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
  assert res.returncode == 0, res.stderr[-2000:]
  printed = res.stdout.strip().splitlines()
  assert printed[-1] == str(devices)
  if seeds:
    assert printed[-2] == str(devices)
  return [np.load(out.format(c)) for c in chunks] + ([np.load(out.format("seeds"))] if seeds else [])


@pytest.fixture(scope="module")
def two_devices(tmp_path_factory):
  """One process with 2 devices for both checks below: chunk sizes 0 and 2, and the seeds."""
  return _run(tmp_path_factory.mktemp("two_devices"), 2, (0, 2), seeds=True)


def test_two_devices_match_one(tmp_path, two_devices):
  import jax

  assert jax.device_count() == 1  # this process: the reference
  one = encoder_of(0)
  assert one.dtype == np.float64 and np.abs(one + np.eye(16, 4)).max() > 1e-3  # trained
  for two in two_devices[:2]:
    np.testing.assert_allclose(two, one, rtol=0, atol=1e-10)
  # 3 devices cannot split 4 subsets evenly: 2 of them are used, with the same result
  np.testing.assert_allclose(_run(tmp_path, 3)[0], one, rtol=0, atol=1e-10)


def test_two_processes_with_jax_distributed(tmp_path):
  """Two CLI processes (one CPU device each) joined by jax.distributed: process 0 writes the
  result, which equals a single-process run."""
  import socket

  import test_fit

  phi1, phi2, _ = test_fit.planted()
  np.save(tmp_path / "phi1.npy", phi1)
  np.save(tmp_path / "phi2.npy", phi2)
  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  common = [
    "--phi1",
    str(tmp_path / "phi1.npy"),
    "--phi2",
    str(tmp_path / "phi2.npy"),
    "--preset",
    "official",
    "--k",
    "4",
    "--num-iters",
    "4",
    "--num-subsets",
    "4",
    "--subset-size",
    "300",
    "--adaptation-steps",
    "10",
    "--inner-lr",
    "0.05",
    "--outer-lr",
    "0.01",
    "--quiet",
    "--no-plots",
  ]
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1")
  procs = [
    subprocess.Popen(
      [
        sys.executable,
        "-m",
        "hume_jax.train",
        *common,
        "--out",
        str(tmp_path / "multi"),
        "--distributed",
        "--coordinator",
        f"localhost:{port}",
        "--num-processes",
        "2",
        "--process-id",
        str(i),
      ],
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
    )
    for i in (0, 1)
  ]
  for p in procs:
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
  subprocess.run(
    [sys.executable, "-m", "hume_jax.train", *common, "--out", str(tmp_path / "single")],
    env=env,
    check=True,
    capture_output=True,
  )
  assert sorted(os.listdir(tmp_path)) == ["multi", "phi1.npy", "phi2.npy", "single"]  # process 1 wrote nothing here
  raw = [np.load(tmp_path / d / "task_encoder.npz")["raw"] for d in ("multi", "single")]
  np.testing.assert_allclose(raw[0], raw[1], atol=1e-4)
  np.testing.assert_array_equal(
    np.load(tmp_path / "multi" / "labels_train.npy"), np.load(tmp_path / "single" / "labels_train.npy")
  )


def test_seeds_split_over_devices_match_one(two_devices):
  """fit_seeds splits each chunk's seeds over the devices: same runs as on one device."""
  one = np.asarray(seed_runs().encoder.raw)
  assert one.shape == (4, 16, 4)
  np.testing.assert_allclose(two_devices[2], one, rtol=0, atol=1e-10)


STAGES_SCRIPT = """
import sys, numpy as np, jax
sys.path.insert(0, {tests!r})
import test_devices
np.savez({out!r}, **test_devices.{stages}())
print(jax.device_count())
"""


def _on_two_devices(stages: str, out: str):
  """``test_devices.<stages>()``'s arrays computed in a process of its own with two forced CPU devices."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
  code = STAGES_SCRIPT.format(tests=os.path.dirname(__file__), out=out, stages=stages)
  res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
  assert res.returncode == 0 and res.stdout.split()[-1] == "2", res.stderr[-2000:]
  return np.load(out)


def row_stages() -> dict:
  """The stages that label or condition rows in batches (``sampling.row_blocks``) on 20,500 rows:
  the nearest centre of each row, and conditioning's moments and projection on the device path."""
  from hume_jax.evaluation.sampling import nearest, row_blocks
  from hume_jax.search import conditioning

  rng = np.random.default_rng(5)
  x = (rng.normal(size=(20_500, 24)) * np.linspace(3, 0.3, 24) + 2).astype(np.float32)
  host = conditioning.on_accelerator
  conditioning.on_accelerator = lambda: True  # the device path, here on CPU devices
  try:
    c = conditioning.fit_conditioning(x, unit_rows=False, max_dim=6)
    mapped = conditioning.apply_conditioning(c, x)
  finally:
    conditioning.on_accelerator = host
  block, _ = next(row_blocks(x))
  devices = np.array(len(block.sharding.device_set))
  return {"nearest": nearest(x, x[:7]), "components": c.components, "mapped": mapped, "devices": devices}


def test_row_batches_split_over_two_devices_give_the_one_device_result(tmp_path):
  two, one = _on_two_devices("row_stages", str(tmp_path / "rows.npz")), row_stages()
  assert int(two["devices"]) == 2 and int(one["devices"]) == 1  # each batch's rows on both devices
  np.testing.assert_array_equal(two["nearest"], one["nearest"])
  np.testing.assert_allclose(two["components"], one["components"], atol=1e-6)
  np.testing.assert_allclose(two["mapped"], one["mapped"], atol=1e-5)


def split_stages() -> dict:
  """The stages that run independent problems at once: k-means' 10 restarts and 4 folds of logistic
  regression in two spaces (``sampling.split_sharding``), with how many devices each input was put on."""
  from hume_jax.evaluation import logistic
  from hume_jax.evaluation.kmeans import kmeans
  from hume_jax.evaluation.sampling import split_sharding

  rng = np.random.default_rng(8)
  centres = rng.normal(size=(4, 12)) * 3
  y = rng.integers(0, 4, 600)
  x = (centres[y] + rng.normal(size=(600, 12))).astype(np.float32)
  spaces = [x, (x @ rng.normal(size=(12, 12))).astype(np.float32)]
  centers, labels, inertia = kmeans(x, 4, seed=3, n_init=10)
  folds = np.array_split(rng.permutation(600), 4)
  preds = logistic.crossval_predict(spaces, y, folds, 4)
  used = [0 if s is None else len(s[0].device_set) for s in (split_sharding(10, "r"), split_sharding(4, "f"))]
  arrays = {"centers": centers, "labels": labels, "inertia": inertia, "preds": preds, "y": y}
  return {**arrays, "devices": np.array(used)}


def test_restarts_and_folds_split_over_two_devices_give_the_one_device_result(tmp_path):
  two, one = _on_two_devices("split_stages", str(tmp_path / "split.npz")), split_stages()
  assert list(two["devices"]) == [2, 2] and list(one["devices"]) == [0, 0]
  # Restarts that reach the same partition tie to rounding, so the kept one may differ: the same partition
  # and centres up to the order of the clusters, and the same inertia.
  to_one = {a: b for a, b in zip(two["labels"], one["labels"])}
  assert len(set(to_one.values())) == 4 and [to_one[a] for a in two["labels"]] == list(one["labels"])
  np.testing.assert_allclose(two["centers"][list(to_one)], one["centers"][list(to_one.values())], atol=1e-4)
  np.testing.assert_allclose(two["inertia"], one["inertia"], rtol=1e-5)
  np.testing.assert_array_equal(two["preds"], one["preds"])
  assert (one["preds"] == one["y"]).mean() > 0.9  # a real fit, not a constant
