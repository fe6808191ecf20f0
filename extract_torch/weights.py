"""Loading checkpoints: from a local file (``--weights PATH``) or from the authors' URL.

A local file may be a plain state dict, a training checkpoint that holds one under
``state_dict`` / ``model`` (MoCo's ``.pth.tar``), a TorchScript archive (OpenAI CLIP's
``.pt``) or a ``.safetensors`` file. Downloads go to torch hub's cache
(``$TORCH_HOME/hub/checkpoints``) and are checked against the hash their URL carries.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from typing import Iterable

import torch
from torch import nn


def _is_torchscript(path: str) -> bool:
  if not zipfile.is_zipfile(path):
    return False
  with zipfile.ZipFile(path) as z:
    return any(name.endswith("constants.pkl") for name in z.namelist())


def read_state_dict(path: str, what: str = "--weights") -> dict[str, torch.Tensor]:
  """The tensors stored in the checkpoint ``path``, as a flat ``{name: tensor}`` dict."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"{what}: no such file {path}")
  if os.path.getsize(path) == 0:
    raise ValueError(f"{what}: {path} is empty (0 bytes)")
  try:
    if path.endswith(".safetensors"):
      from safetensors.torch import load_file

      obj = load_file(path)
    elif _is_torchscript(path):
      obj = torch.jit.load(path, map_location="cpu").state_dict()
    else:
      obj = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # noqa: BLE001  (torch raises many kinds for a bad file)
    raise ValueError(f"{what}: cannot read {path} as a PyTorch checkpoint ({type(e).__name__}: {e})") from None
  for key in ("state_dict", "model", "teacher"):
    if isinstance(obj, dict) and isinstance(obj.get(key), dict):
      obj = obj[key]
      break
  if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
    raise ValueError(f"{what}: {path} holds no state dict (found {type(obj).__name__})")
  return dict(obj)


def strip_prefix(state: dict[str, torch.Tensor], prefixes: Iterable[str]) -> dict[str, torch.Tensor]:
  """Keeps the keys under the first of ``prefixes`` that any key has, without it."""
  for prefix in prefixes:
    if any(k.startswith(prefix) for k in state):
      return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
  return state


def load_into(model: nn.Module, state: dict[str, torch.Tensor], source: str, name: str) -> nn.Module:
  """``model.load_state_dict(state, strict=True)`` with a message that says what did not match."""
  own = model.state_dict()
  missing = [k for k in own if k not in state]
  unexpected = [k for k in state if k not in own]
  shapes = [
    f"{k}: expected {tuple(own[k].shape)}, found {tuple(state[k].shape)}"
    for k in own
    if k in state and own[k].shape != state[k].shape
  ]
  if missing or unexpected or shapes:
    raise ValueError(
      f"--weights {source} does not fit {name}: {len(missing)} missing keys {missing[:4]}, "
      f"{len(unexpected)} unexpected keys {unexpected[:4]}, {len(shapes)} shape mismatches {shapes[:2]}"
    )
  model.load_state_dict(state, strict=True)
  return model


def download(url: str, file_name: str | None = None) -> str:
  """Downloads ``url`` once into torch hub's checkpoint cache and returns the local path.

  When the URL names a SHA-256 (a 64-hex folder, as OpenAI's) or a prefix of one (a
  ``name-<hex>.pth`` file, as torchvision's), the file is checked against it.
  """
  folder = os.path.join(torch.hub.get_dir(), "checkpoints")
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, file_name or os.path.basename(url))
  if not os.path.exists(path):
    try:
      torch.hub.download_url_to_file(url, path, progress=True)
    except Exception as e:  # noqa: BLE001
      reason = " ".join(f"{type(e).__name__}: {e}".split())[:200]
      raise RuntimeError(
        f"could not download {url} ({reason}); without internet access, fetch that file elsewhere "
        "and pass it with --weights FILE"
      ) from None
  parent = url.rstrip("/").split("/")[-2]
  stem = os.path.basename(url).split(".")[0]
  expected = parent if len(parent) == 64 else (stem.rsplit("-", 1)[-1] if "-" in stem else "")
  if expected and all(c in "0123456789abcdef" for c in expected):
    with open(path, "rb") as f:
      digest = hashlib.sha256(f.read()).hexdigest()
    if not digest.startswith(expected):
      raise ValueError(
        f"{path}: SHA-256 {digest[:16]}... does not match {expected[:16]}... of {url}; "
        "delete the file to download it again"
      )
  return path
