"""The layout's invariants: each concern in one room, checked on the source itself."""

import ast
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MATHS = ("_sparsemax", "_task_encoder", "_inner", "_objective", "_outer")
ABOVE_THE_MATHS = (
  "training._fit",
  "training._loop",
  "training.ensemble",
  "runs",
  "io.workdir",
  "train",
  "search.auto",
  "search.budget",
  "training.stopping",
  "estimator",
)
ARGPARSE_TABLES = ("build_parser",)  # a function that only lists flags


def _modules(package):
  for folder, _, files in os.walk(os.path.join(ROOT, package)):
    for name in sorted(files):
      if name.endswith(".py"):
        path = os.path.join(folder, name)
        yield os.path.relpath(path, ROOT), ast.parse(open(path).read()), open(path).read()


def _imports(tree):
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      yield node.module
      yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_the_maths_imports_no_layer_above_it_and_never_jits():
  for path, tree, text in _modules("hume_jax"):
    if os.path.splitext(os.path.basename(path))[0] not in MATHS:
      continue
    above = [
      m for m in _imports(tree) if any(m == f"hume_jax.{a}" or m.startswith(f"hume_jax.{a}.") for a in ABOVE_THE_MATHS)
    ]
    assert not above, f"{path} imports {above}"
    jits = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "jit"]
    assert not jits and "jax.jit" not in set(_imports(tree)), f"{path} uses jax.jit (lines {jits}); the caller owns it"


def test_torch_stays_in_extract_torch_and_extract_torch_stays_apart():
  for path, tree, _ in _modules("hume_jax"):
    assert not [m for m in _imports(tree) if m.split(".")[0] == "torch"], f"{path} imports torch"
  for path, tree, _ in _modules("extract_torch"):
    assert not [m for m in _imports(tree) if m.split(".")[0] == "hume_jax"], f"{path} imports hume_jax"


def test_only_the_command_line_parses_flags_or_exits():
  for path, tree, _ in _modules("hume_jax"):
    if path.startswith(os.path.join("hume_jax", "train") + os.sep):
      continue
    assert "argparse" not in set(_imports(tree)), f"{path} imports argparse"
    exits = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "SystemExit"]
    assert not exits, f"{path} raises SystemExit (lines {exits}); only hume_jax/train/ does"


def test_no_module_over_400_lines_and_no_function_over_60():
  for package in ("hume_jax", "extract_torch"):
    for path, tree, text in _modules(package):
      assert text.count("\n") <= 400, f"{path} has {text.count(chr(10))} lines"
      for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name not in ARGPARSE_TABLES:
          length = node.end_lineno - node.lineno + 1
          assert length <= 60, f"{path}: {node.name} has {length} lines"


def test_one_formatter_and_linter_for_the_whole_repository():
  ruff = shutil.which("ruff") or pytest.skip("ruff is not installed (pip install -e '.[test]')")
  for args in (["check", "."], ["format", "--check", "."]):
    done = subprocess.run([ruff, *args], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def test_the_public_face_holds_every_protocol_and_nothing_private():
  import hume_jax

  for name in (
    "fit",
    "fit_seeds",
    "fit_auto",
    "fit_turtle",
    "predict",
    "select_k",
    "best_and_vote",
    "HUME",
    "HumeConfig",
    "TurtleConfig",
    "Run",
    "train_one",
    "train_seeds",
    "train_auto",
  ):
    assert name in hume_jax.__all__, name
  assert not [n for n in hume_jax.__all__ if n.startswith("_")] and "householder_product" not in hume_jax.__all__
  assert sys.modules.get("torch") is None or "hume_jax" not in getattr(sys.modules["torch"], "__file__", "")


FLAT_MAX = 12  # modules directly in hume_jax/
LAYERS = (  # lowest first: a module imports only modules of its own layer or of the layers before it
  "hume_jax.config",
  "hume_jax.core",
  "hume_jax.evaluation",
  "hume_jax.io",
  "hume_jax.training",
  "hume_jax.search",
  "hume_jax.runs",
  "hume_jax.estimator",
  "hume_jax.report",
  "hume_jax.train",
  "hume_jax",
)


def _module_name(path):
  parts = os.path.splitext(path)[0].split(os.sep)
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph():
  """Each module of hume_jax and the modules of hume_jax it imports, anywhere in the file."""
  trees = {_module_name(path): tree for path, tree, _ in _modules("hume_jax")}
  graph = {}
  for name, tree in trees.items():
    targets = set()
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        targets.update(alias.name for alias in node.names)
      elif isinstance(node, ast.ImportFrom) and node.module:
        subs = [f"{node.module}.{alias.name}" for alias in node.names]
        targets.update(s if s in trees else node.module for s in subs)
    graph[name] = {t for t in targets if t in trees and t != name}
  return graph


def _layer(name):
  found = [layer for layer in LAYERS if name == layer or name.startswith(layer + ".")]
  assert found, f"{name} is in no layer of LAYERS"
  return LAYERS.index(max(found, key=len))


def test_few_modules_flat_and_no_layer_imports_a_higher_one():
  flat = sorted(n for n in os.listdir(os.path.join(ROOT, "hume_jax")) if n.endswith(".py"))
  assert len(flat) <= FLAT_MAX, f"{len(flat)} modules directly in hume_jax/: {flat}"
  for name, targets in _graph().items():
    if name.endswith(".__main__"):  # an entry point (python -m) hands over to the command line
      continue
    higher = sorted(t for t in targets if _layer(t) > _layer(name))
    assert not higher, f"{name} (layer {LAYERS[_layer(name)]}) imports the higher {higher}"


def test_the_import_graph_has_no_cycles():
  graph, done, path = _graph(), set(), []

  def visit(name):
    if name in path:
      raise AssertionError("import cycle: " + " -> ".join(path[path.index(name) :] + [name]))
    if name in done:
      return
    path.append(name)
    for target in sorted(graph[name]):
      visit(target)
    path.pop()
    done.add(name)

  for name in sorted(graph):
    visit(name)
