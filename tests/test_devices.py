"""Subsets split over several devices give the result of one device (2 forced CPU devices)."""

import os
import subprocess
import sys

import numpy as np

SCRIPT = """
import sys, numpy as np, jax
jax.config.update("jax_enable_x64", True)
from hume_jax import HumeConfig, fit
sys.path.insert(0, {tests!r})
from test_fit import planted
phi1, phi2, _ = planted()
for chunk in {chunks!r}:
  cfg = HumeConfig(k=4, num_iters=4, num_subsets=4, subset_size=300, adaptation_steps=10, inner_lr=0.05,
                   outer_lr=0.01, subset_chunk=chunk)
  state, _ = fit(phi1, phi2, cfg, progress=False)
  np.save({out!r}.format(chunk), np.asarray(state.encoder.raw))
print(jax.device_count())
"""


def _run(tmp_path, devices, chunks=(0,)):
  """The trained encoder of each subset chunk size, on ``devices`` forced CPU devices (one process)."""
  out = str(tmp_path / f"raw_{devices}_{{}}.npy")
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
  code = SCRIPT.format(tests=os.path.dirname(__file__), out=out, chunks=tuple(chunks))
  res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
  assert res.stdout.strip().splitlines()[-1] == str(devices), res.stderr
  return [np.load(out.format(c)) for c in chunks]


def test_two_devices_match_one(tmp_path):
  one, = _run(tmp_path, 1)
  assert one.dtype == np.float64 and np.abs(one + np.eye(16, 4)).max() > 1e-3  # trained
  for two in _run(tmp_path, 2, (0, 2)):
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
  common = ["--phi1", str(tmp_path / "phi1.npy"), "--phi2", str(tmp_path / "phi2.npy"), "--preset", "official", "--k", "4",
            "--num-iters", "4", "--num-subsets", "4", "--subset-size", "300", "--adaptation-steps", "10",
            "--inner-lr", "0.05", "--outer-lr", "0.01", "--quiet", "--no-plots"]
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1")
  procs = [subprocess.Popen([sys.executable, "-m", "hume_jax.train", *common, "--out", str(tmp_path / "multi"),
                             "--distributed", "--coordinator", f"localhost:{port}", "--num-processes", "2",
                             "--process-id", str(i)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True) for i in (0, 1)]
  for p in procs:
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
  subprocess.run([sys.executable, "-m", "hume_jax.train", *common, "--out", str(tmp_path / "single")],
                 env=env, check=True, capture_output=True)
  assert sorted(os.listdir(tmp_path)) == ["multi", "phi1.npy", "phi2.npy", "single"]  # process 1 wrote nothing here
  raw = [np.load(tmp_path / d / "task_encoder.npz")["raw"] for d in ("multi", "single")]
  np.testing.assert_allclose(raw[0], raw[1], atol=1e-4)
  np.testing.assert_array_equal(np.load(tmp_path / "multi" / "labels_train.npy"),
                                np.load(tmp_path / "single" / "labels_train.npy"))


SEEDS_SCRIPT = """
import numpy as np, jax
jax.config.update("jax_enable_x64", True)
import sys
sys.path.insert(0, {tests!r})
from test_fit import planted
from hume_jax import HumeConfig
from hume_jax.ensemble import fit_seeds
phi1, phi2, _ = planted()
cfg = HumeConfig(k=4, num_iters=3, num_subsets=2, subset_size=300, adaptation_steps=5, inner_lr=0.05, outer_lr=0.01)
states = fit_seeds(phi1, phi2, cfg, [3, 4, 5, 6], chunk=2, progress=False)
np.save({out!r}, np.asarray(states.encoder.raw))
print(len(states.encoder.raw.sharding.device_set) if hasattr(states.encoder.raw, "sharding") else 1)
"""


def test_seeds_split_over_devices_match_one(tmp_path):
  """fit_seeds splits each chunk's seeds over the devices: same runs as on one device."""
  outs = []
  for devices in (1, 2):
    out = str(tmp_path / f"seeds_{devices}.npy")
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
    code = SEEDS_SCRIPT.format(tests=os.path.dirname(__file__), out=out)
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1] == str(devices)  # the last chunk lives on that many devices
    outs.append(np.load(out))
  assert outs[0].shape == (4, 16, 4)
  np.testing.assert_allclose(outs[1], outs[0], rtol=0, atol=1e-10)
