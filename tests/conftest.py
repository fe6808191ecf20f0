import atexit
import os
import shutil
import tempfile

import jax
import numpy as np
import pytest

from hume_jax import HumeConfig

# Parity and gradient checks run in float64; library code keeps explicit float32 where it wants it.
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

# One persistent compilation cache for this test session, shared with the CLI processes the
# tests start (they inherit the environment): the same programs are compiled once, not once
# per process or per fresh jit wrapper. A new folder per session, so nothing carries over
# between runs and no test depends on what an earlier run compiled.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="hume_jax_tests_xla_cache_")
  atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], True)
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


# Data and a small config shared by the test files (``from conftest import planted``).


def planted(n=600, k=4, seed=0):
  """Two different linear views of the same k well-separated classes."""
  rng = np.random.default_rng(seed)
  y = rng.integers(0, k, n)
  centers = rng.normal(size=(k, 8)) * 2
  latent = centers[y] + 0.5 * rng.normal(size=(n, 8))
  phi1 = latent @ rng.normal(size=(8, 16)) + 0.1 * rng.normal(size=(n, 16))
  phi2 = latent @ rng.normal(size=(8, 12)) + 0.1 * rng.normal(size=(n, 12))
  return phi1 / np.linalg.norm(phi1, axis=1, keepdims=True), phi2, y


def cone(n=600, k=4, seed=0):
  """Planted classes seen through ReLU features with a positive offset: every row in a narrow
  cone (mean cosine to the mean direction about 0.9), like a CNN's pooled features."""
  rng = np.random.default_rng(seed)
  y = rng.integers(0, k, n)
  latent = rng.normal(size=(k, 8))[y] * 2 + 0.5 * rng.normal(size=(n, 8))
  phi1 = np.maximum(latent @ rng.normal(size=(8, 16)), 0) + 3.0
  phi2 = np.maximum(latent @ rng.normal(size=(8, 12)), 0) + 3.0
  return phi1.astype(np.float32), phi2.astype(np.float32), y


CFG = HumeConfig(
  k=4,
  num_iters=60,
  num_subsets=4,
  subset_size=300,
  adaptation_steps=30,
  inner_lr=0.05,
  outer_lr=0.01,
  milestones=(40, 50),
  seed=0,
)


@pytest.fixture
def files(tmp_path):
  """``--phi1``/``--phi2`` flags of a small planted two-view set saved as .npy (no labels)."""
  phi1, phi2, _ = planted()
  np.save(tmp_path / "phi1.npy", phi1)
  np.save(tmp_path / "phi2.npy", phi2)
  return ["--phi1", str(tmp_path / "phi1.npy"), "--phi2", str(tmp_path / "phi2.npy")]


def digit_pngs(root, per_class: int) -> str:
  """Real images: scikit-learn's handwritten digits 0, 1, 2 (``per_class`` each) as 32 x 32 PNG files in class
  subfolders of ``root``; returns ``root``."""
  from PIL import Image
  from sklearn.datasets import load_digits

  digits = load_digits()
  for c in range(3):
    (root / f"digit_{c}").mkdir()
    for j, i in enumerate(np.flatnonzero(digits.target == c)[:per_class]):
      img = (digits.images[i] * 255 / 16).astype(np.uint8)
      Image.fromarray(img).resize((32, 32), Image.NEAREST).save(root / f"digit_{c}" / f"{j:02d}.png")
  return str(root)
