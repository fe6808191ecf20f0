"""TURTLE mode against an independent PyTorch implementation (float64), and on planted data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import planted

from hume_jax import hungarian_accuracy
from hume_jax.core._inner import init_linear
from hume_jax.training.turtle import Classifier, TurtleConfig, fit_turtle, init_turtle, predict_turtle, turtle_step

torch = pytest.importorskip("torch")
import torch_reference as tr  # noqa: E402


@pytest.mark.parametrize("warm_start, batch_size", [(False, 150), (True, 150), (False, 200)])
def test_matches_torch(warm_start, batch_size):
  """150 of 200 rows: a gathered batch; 200: all rows in place (the reference permutes them)."""
  phi1, phi2, _ = planted(n=200)
  phis = (phi1, phi2)
  cfg = TurtleConfig(k=4, inner_lr=0.05, outer_lr=0.02, inner_steps=5, batch_size=batch_size, warm_start=warm_start)
  state = init_turtle(jax.random.PRNGKey(1), cfg, (16, 12), jnp.float64)
  heads = [tr.make_turtle_head(d, 4).double() for d in (16, 12)]
  for h, jh in zip(heads, state.encoder):
    with torch.no_grad():
      h.parametrizations.weight.original0.copy_(torch.from_numpy(np.array(jh.g))[:, None])
      h.parametrizations.weight.original1.copy_(torch.from_numpy(np.array(jh.v)))
      h.bias.copy_(torch.from_numpy(np.array(jh.b)))
  batches = []
  for i in range(4):  # the draws turtle_step makes
    k_batch, k_init = jax.random.split(jax.random.fold_in(state.key, i))
    idx = np.array(jax.random.permutation(k_batch, 200)[:batch_size])
    if warm_start:
      inner = state.inner
    else:
      inner = [init_linear(kk, d, 4, jnp.float64) for kk, d in zip(jax.random.split(k_init, 2), (16, 12))]
      inner = [Classifier(V=w.W.T, c=w.b) for w in inner]
    inits = [(torch.from_numpy(np.array(w.V)), torch.from_numpy(np.array(w.c))) for w in inner]
    batches.append((torch.from_numpy(idx), inits))
  xs = tuple(jnp.asarray(x) for x in phis)
  for _ in range(4):
    state, _ = jax.jit(lambda s, x: turtle_step(s, x, config=cfg))(state, xs)
  tr.turtle_train(
    heads,
    [torch.from_numpy(x) for x in phis],
    batches,
    inner_lr=cfg.inner_lr,
    outer_lr=cfg.outer_lr,
    inner_steps=cfg.inner_steps,
    gamma=cfg.gamma,
    warm_start=warm_start,
  )
  for h, jh in zip(heads, state.encoder):
    np.testing.assert_allclose(np.array(jh.v), h.parametrizations.weight.original1.detach().numpy(), atol=1e-6)
    np.testing.assert_allclose(np.array(jh.g), h.parametrizations.weight.original0.detach().numpy()[:, 0], atol=1e-6)
    np.testing.assert_allclose(np.array(jh.b), h.bias.detach().numpy(), atol=1e-6)


def test_recovers_planted_labels():
  phi1, phi2, y = planted()
  cfg = TurtleConfig(k=4, inner_lr=0.05, outer_lr=0.01, inner_steps=10, num_iters=150, batch_size=400)
  state, history = fit_turtle([phi1, phi2], cfg, progress=False, labels=y)
  assert (
    np.abs(
      np.asarray(state.encoder[0].v) - np.asarray(init_turtle(jax.random.PRNGKey(42), cfg, (16, 12)).encoder[0].v)
    ).max()
    > 1e-2
  )
  assert hungarian_accuracy(predict_turtle(state.encoder, [phi1, phi2]), y) > 0.9
  assert history[-1]["loss"] < history[0]["loss"]


def test_cli_turtle(tmp_path):
  import json
  import os

  from hume_jax import train

  phi1, phi2, y = planted()
  for name, arr in {"phi1": phi1, "phi2": phi2, "y": y}.items():
    np.save(tmp_path / f"{name}.npy", arr)
  out = str(tmp_path / "run")
  res = train.main(
    [
      "--method",
      "turtle",
      "--phi1",
      str(tmp_path / "phi1.npy"),
      "--phi2",
      str(tmp_path / "phi2.npy"),
      "--labels",
      str(tmp_path / "y.npy"),
      "--k",
      "4",
      "--num-iters",
      "200",
      "--inner-lr",
      "0.05",
      "--outer-lr",
      "0.01",
      "--batch-size",
      "400",
      "--quiet",
      "--out",
      out,
    ]
  )
  assert res["splits"]["train"]["acc"] > 0.9
  assert set(np.load(os.path.join(out, "task_encoder.npz"))) == {"v1", "g1", "b1", "v2", "g2", "b2"}
  cfg = json.load(open(os.path.join(out, "config.json")))
  assert cfg["turtle"]["gamma"] == 10.0 and cfg["turtle"]["inner_steps"] == 10


def test_cli_turtle_seeds(tmp_path):
  """--seeds with TURTLE: each seed's own run (equal to a single run with that seed), the best-CV
  run and the vote."""
  from hume_jax import train

  phi1, phi2, y = planted()
  for name, arr in {"phi1": phi1, "phi2": phi2, "y": y}.items():
    np.save(tmp_path / f"{name}.npy", arr)
  common = [
    "--method",
    "turtle",
    "--phi1",
    str(tmp_path / "phi1.npy"),
    "--phi2",
    str(tmp_path / "phi2.npy"),
    "--labels",
    str(tmp_path / "y.npy"),
    "--k",
    "4",
    "--num-iters",
    "60",
    "--inner-lr",
    "0.05",
    "--outer-lr",
    "0.01",
    "--batch-size",
    "400",
    "--quiet",
    "--no-plots",
    "--no-baselines",
  ]
  res = train.main(common + ["--seeds", "2", "--seed", "5", "--out", str(tmp_path / "two")])
  assert [e["seed"] for e in res["seeds"]] == [5, 6] and res["best_seed"] in (5, 6)
  assert "train_vote" in res["splits"]
  one = train.main(common + ["--seed", "6", "--out", str(tmp_path / "one")])
  assert res["seeds"][1]["acc"] == one["splits"]["train"]["acc"]
