"""A restricted reader of the pickles CIFAR-10 and CIFAR-100 ship (``cifar-10-batches-py``,
``cifar-100-python``).

Those files are Python pickles, and unpickling runs whatever callable a file names. Their
content is only dicts, lists, strings, bytes, numbers and numpy arrays, so ``load`` resolves
only the callables that rebuild these (numpy's array, dtype and scalar constructors, and the
``latin1`` encoding of byte strings); any other name (``os.system``, ``builtins.eval``, a class
of some module) stops the reading before it is called, with an error naming the file.
"""

from __future__ import annotations

import codecs
import io
import pickle

import numpy as np

try:  # numpy 2 names its core ``numpy._core``; numpy 1 and the pickles it wrote, ``numpy.core``
  from numpy._core import multiarray as _multiarray
  from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover
  from numpy.core import multiarray as _multiarray
  from numpy.core import numeric as _numeric

# (submodule, name) -> the numpy callables of an array's or a scalar's pickle.
_NUMPY = {
  ("multiarray", "_reconstruct"): _multiarray._reconstruct,
  ("multiarray", "scalar"): _multiarray.scalar,
  ("numeric", "_frombuffer"): _numeric._frombuffer,
}
_SAFE_BUILTINS = ("set", "frozenset", "bytearray", "complex", "list", "dict", "tuple", "int", "float", "str", "bytes")


def _latin1(text: str, encoding: str = "latin1") -> bytes:
  """``_codecs.encode`` as byte strings are pickled with protocols 0-2, for ``latin1`` only."""
  if encoding not in ("latin1", "latin-1"):
    raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} (only latin1 rebuilds bytes)")
  return codecs.encode(text, "latin1")


def _allowed(module: str, name: str):
  """The object a pickle may name as ``module.name``, or None."""
  import builtins

  if module in ("builtins", "__builtin__") and name in _SAFE_BUILTINS:
    return getattr(builtins, name)
  if module in ("_codecs", "codecs") and name == "encode":
    return _latin1
  if module == "numpy" and name in ("ndarray", "dtype"):
    return getattr(np, name)
  parts = module.split(".")
  if parts[0] == "numpy" and len(parts) == 3 and parts[1] in ("core", "_core"):
    return _NUMPY.get((parts[2], name))
  return None


class _Restricted(pickle.Unpickler):
  def find_class(self, module: str, name: str):
    found = _allowed(module, name)
    if found is None:
      raise pickle.UnpicklingError(
        f"it names {module}.{name}, and only dicts, lists, strings, numbers and numpy arrays are read"
      )
    return found


def load(path: str, what: str = "a CIFAR python batch"):
  """The content of the pickle ``path``, read with only the callables listed above.

  Raises:
    FileNotFoundError: when ``path`` does not exist.
    ValueError: one line naming ``path``, when it names anything else or is not a pickle.
  """
  with open(path, "rb") as f:
    raw = f.read()
  try:
    return _Restricted(io.BytesIO(raw), encoding="latin1").load()
  except Exception as e:  # noqa: BLE001  (a pickle may fail in any way; each is the same refusal)
    reason = " ".join(str(e).split()) or type(e).__name__
    raise ValueError(f"{path}: not {what}, refused ({reason})") from None
