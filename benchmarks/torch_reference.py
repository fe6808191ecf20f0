"""An independent PyTorch implementation of the official HUME objective and outer loop.

Written the way the official code computes it: ``nn.Linear`` with
``nn.utils.parametrizations.orthogonal`` as the task encoder, the OpenNMT sparsemax as an
``autograd.Function``, the inner SGD unrolled with ``autograd.grad(create_graph=True)``
(learn2learn's MAML), subsets in a Python loop, Adam + ``MultiStepLR`` + global-norm
clipping, and the temperature divided by 10 whenever the learning rate changes. It is
the reference the JAX implementation is checked against.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Sparsemax(torch.autograd.Function):
  """Sparsemax over the last dim (OpenNMT-py's threshold_and_support)."""

  @staticmethod
  def forward(ctx, z):
    z_sorted, _ = torch.sort(z, descending=True, dim=-1)
    z_cumsum = z_sorted.cumsum(-1) - 1
    ks = torch.arange(1, z.shape[-1] + 1, dtype=z.dtype, device=z.device)
    support = ks * z_sorted > z_cumsum
    k_z = support.sum(-1, keepdim=True)
    tau_z = z_cumsum.gather(-1, k_z - 1) / k_z.to(z.dtype)
    out = torch.clamp(z - tau_z, min=0)
    ctx.save_for_backward(k_z, out)
    return out

  @staticmethod
  def backward(ctx, g):
    k_z, out = ctx.saved_tensors
    g = g.clone()
    g[out == 0] = 0
    v_hat = g.sum(-1, keepdim=True) / k_z.to(g.dtype)
    return torch.where(out != 0, g - v_hat, g)


def make_task_encoder(d1: int, k: int) -> nn.Module:
  """The official task encoder: orthogonal ``nn.Linear(d1, k, bias=False)`` (Eq. 3)."""
  return nn.utils.parametrizations.orthogonal(nn.Linear(d1, k, bias=False))


def subset_loss(encoder, phi1, phi2, tr, te, W0, b0, *, tau, inner_lr, steps, H_reg):
  y_tr = Sparsemax.apply(encoder(phi1[tr]) / tau)
  y_te = Sparsemax.apply(encoder(phi1[te]) / tau)
  W, b = W0.clone().requires_grad_(), b0.clone().requires_grad_()
  for _ in range(steps):
    err = F.cross_entropy(F.linear(phi2[tr], W, b), y_tr)
    gW, gb = torch.autograd.grad(err, (W, b), create_graph=True)
    W, b = W - inner_lr * gW, b - inner_lr * gb
  valid = F.cross_entropy(F.linear(phi2[te], W, b), y_te)
  entr = torch.special.entr(torch.cat([y_tr, y_te]).mean(0)).sum()
  return valid - H_reg * entr


def hume_loss(encoder, phi1, phi2, subsets, n_train, inits, **kw):
  """Mean over subsets; ``inits[s] = (W [k, d2], b [k])`` is the inner init of subset ``s``."""
  losses = [
    subset_loss(encoder, phi1, phi2, idx[:n_train], idx[n_train:], W0, b0, **kw)
    for idx, (W0, b0) in zip(subsets, inits)
  ]
  return sum(losses) / len(losses)


def outer_iteration(encoder, opt, phi1, phi2, subsets, n_train, inits, **kw) -> float:
  """One official outer iteration: per-subset ``backward`` (gradients accumulate as the mean
  over subsets), global-norm clipping at 1.0, one Adam step. Returns the mean loss."""
  opt.zero_grad()
  total = 0.0
  for idx, (W0, b0) in zip(subsets, inits):
    loss = subset_loss(encoder, phi1, phi2, idx[:n_train], idx[n_train:], W0, b0, **kw) / len(subsets)
    loss.backward()
    total += loss.item()
  nn.utils.clip_grad_norm_(encoder.parameters(), 1.0)
  opt.step()
  return total


def train(encoder, phi1, phi2, batches, n_train, *, outer_lr, tau, inner_lr, steps, H_reg, milestones, anneal=True):
  """Official outer loop over given ``batches[i] = (subsets [S, m], inits)``."""
  opt = torch.optim.Adam(encoder.parameters(), lr=outer_lr)
  sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(milestones), gamma=0.1)
  for subsets, inits in batches:
    outer_iteration(
      encoder, opt, phi1, phi2, subsets, n_train, inits, tau=tau, inner_lr=inner_lr, steps=steps, H_reg=H_reg
    )
    if anneal:
      sched.step()
      if sched.get_last_lr()[0] != outer_lr:
        outer_lr = sched.get_last_lr()[0]
        tau = tau / 10
  return encoder


def random_batch(n, d2, k, num_subsets, subset_size, rng):
  """Subsets and fresh ``nn.Linear(d2, k)`` inits as the official code draws them."""
  m = min(n, subset_size)
  subsets = [torch.from_numpy(rng.choice(n, size=m, replace=False)) for _ in range(num_subsets)]
  inits = []
  for _ in range(num_subsets):
    lin = nn.Linear(d2, k)
    inits.append((lin.weight.detach(), lin.bias.detach()))
  return subsets, inits


# ---------------------------------------------------------------------------
# TURTLE (Gadetsky, Jiang & Brbic, ICML 2024), written like its official run_turtle.py.
# ---------------------------------------------------------------------------


def make_turtle_head(d: int, k: int) -> nn.Module:
  """The official task encoder of one space: ``weight_norm(nn.Linear(d, k))``."""
  return nn.utils.parametrizations.weight_norm(nn.Linear(d, k))


def turtle_train(heads, phis, batches, *, inner_lr, outer_lr, inner_steps, gamma, warm_start):
  """TURTLE's loop over given ``batches[i] = (idx [batch], inits)``; ``inits[m] = (W [k, d_m], b [k])``
  are the inner heads' initial weights (used every iteration with cold start, once with warm)."""
  outer_opt = torch.optim.Adam([p for h in heads for p in h.parameters()], lr=outer_lr)
  inner = inner_opt = None
  for idx, inits in batches:
    xs = [x[idx] for x in phis]
    per_space = [torch.softmax(h(x), dim=1) for h, x in zip(heads, xs)]
    labels = torch.stack(per_space).mean(0)
    if inner is None or not warm_start:
      inner = []
      for W, b in inits:
        lin = nn.Linear(W.shape[1], W.shape[0]).to(W.dtype)
        with torch.no_grad():
          lin.weight.copy_(W)
          lin.bias.copy_(b)
        inner.append(lin)
      inner_opt = torch.optim.Adam([p for lin in inner for p in lin.parameters()], lr=inner_lr)
    for _ in range(inner_steps):
      inner_opt.zero_grad()
      loss = sum(F.cross_entropy(lin(x), labels.detach()) for lin, x in zip(inner, xs))
      loss.backward()
      inner_opt.step()
    pred_error = sum(F.cross_entropy(lin(x).detach(), labels) for lin, x in zip(inner, xs))
    reg = sum(torch.special.entr(p.mean(0)).sum() for p in per_space)
    outer_opt.zero_grad()
    (pred_error - gamma * reg).backward()
    outer_opt.step()
  return heads
