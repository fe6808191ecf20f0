import atexit
import os
import shutil
import tempfile

import jax
import numpy as np
import pytest
from test_fit import planted

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


@pytest.fixture
def files(tmp_path):
  """``--phi1``/``--phi2`` flags of a small planted two-view set saved as .npy (no labels)."""
  phi1, phi2, _ = planted()
  np.save(tmp_path / "phi1.npy", phi1)
  np.save(tmp_path / "phi2.npy", phi2)
  return ["--phi1", str(tmp_path / "phi1.npy"), "--phi2", str(tmp_path / "phi2.npy")]
