"""The JAX k-means against scikit-learn's KMeans, and the k-means the accelerators get."""

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from hume_jax.evaluation.kmeans import kmeans


def blobs(n=1500, k=6, d=8, seed=0, spread=4.0):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, k, n)
  return (rng.normal(size=(k, d))[y] * spread + rng.normal(size=(n, d))).astype(np.float32), y


def test_separated_blobs_give_scikit_learns_partition_and_inertia():
  x, y = blobs()
  centers, labels, inertia = kmeans(x, 6, seed=0)
  ref = KMeans(6, n_init=10, random_state=0).fit(x)
  assert adjusted_rand_score(labels, ref.labels_) > 0.99 and adjusted_rand_score(labels, y) > 0.99
  assert abs(inertia - ref.inertia_) / ref.inertia_ < 1e-3
  assert centers.shape == (6, 8) and labels.dtype == np.int64


def test_overlapping_data_reach_an_inertia_as_low_as_scikit_learns():
  """Where local optima differ, the best of 10 restarts is within 1% of scikit-learn's best of 10."""
  x, _ = blobs(n=2000, k=10, d=5, spread=1.0, seed=1)
  _, labels, inertia = kmeans(x, 10, seed=0)
  ref = KMeans(10, n_init=10, random_state=0).fit(x)
  assert inertia <= ref.inertia_ * 1.01
  own = sum(((x[labels == c] - x[labels == c].mean(0)) ** 2).sum() for c in np.unique(labels))
  assert abs(own - inertia) / inertia < 1e-3  # the inertia reported is the partition's own


def test_the_same_seed_gives_the_same_partition_and_labels_are_nearest_centres():
  x, _ = blobs(n=500, k=4, spread=1.5, seed=2)
  a, b = kmeans(x, 4, seed=3), kmeans(x, 4, seed=3)
  np.testing.assert_array_equal(a[1], b[1])
  d = ((x[:, None, :] - a[0][None]) ** 2).sum(-1)
  assert (np.argmin(d, axis=1) == a[1]).mean() > 0.999


def test_an_accelerator_clusters_with_jax_past_rows_on_a_subsample(monkeypatch):
  """``cluster``: scikit-learn on a CPU, this k-means elsewhere; past ``sampling.ROWS`` rows it fits a
  seeded subsample and every row takes its nearest centre."""
  import hume_jax.evaluation.kmeans as hk
  from hume_jax.evaluation.sampling import ROWS

  x, y = blobs(n=ROWS + 2000, k=5, d=4, spread=5.0)
  cpu_centers, cpu_labels = hk.cluster(x, 5, seed=0)
  monkeypatch.setattr(hk.jax, "default_backend", lambda: "gpu")
  centers, labels = hk.cluster(x, 5, seed=0)
  assert adjusted_rand_score(labels, cpu_labels) > 0.99 and adjusted_rand_score(labels, y) > 0.95
  d = ((x[:, None, :] - centers[None]) ** 2).sum(-1)
  np.testing.assert_array_equal(np.argmin(d, axis=1), labels)
