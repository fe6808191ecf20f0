"""Fault injection: each case a user or a scheduler can cause (untrusted data files, bad input,
two writers on one output folder, corrupt checkpoints, resumes that cannot use what was kept) is
replayed here, and each must end in one line that names the file and says what to do, with
nothing run that should not run and nothing lost."""

import os
import pickle
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
from conftest import planted

from extract_torch import formats
from extract_torch.datasets import open_dataset

# ---------------------------------------------------------------------------
# Untrusted data files: CIFAR's pickles and image bombs
# ---------------------------------------------------------------------------


class _Py2Pickler(pickle._Pickler):
  """Writes ``bytes`` as Python 2 ``str`` (BINSTRING), as the CIFAR files were written."""

  dispatch = dict(pickle._Pickler.dispatch)

  def _save_py2_str(self, obj: bytes) -> None:
    head = (
      pickle.SHORT_BINSTRING + bytes([len(obj)]) if len(obj) < 256 else pickle.BINSTRING + struct.pack("<i", len(obj))
    )
    self.write(head + obj)
    self.memoize(obj)

  dispatch[bytes] = _save_py2_str


def _py2_batch(images: np.ndarray, labels: list[int]) -> bytes:
  """A CIFAR-10 batch as the published files hold it: a protocol-2 pickle of Python 2 strings,
  numpy arrays under ``numpy.core.multiarray``, labels a list of ints."""
  import io

  batch = {b"batch_label": b"training batch 1 of 5", b"labels": labels, b"data": images, b"filenames": [b"a.png"]}
  buffer = io.BytesIO()
  _Py2Pickler(buffer, protocol=2).dump(batch)
  return buffer.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


class _Payload:
  """What a crafted batch holds: a call of ``os.system`` when it is unpickled."""

  def __init__(self, marker: str):
    self.marker = marker

  def __reduce__(self):
    return os.system, (f"touch {self.marker}",)


def _cifar10(root, batches: dict) -> None:
  d = root / "cifar-10-batches-py"
  d.mkdir(parents=True, exist_ok=True)
  for name, raw in batches.items():
    (d / name).write_bytes(raw)


def test_cifar_published_format_reads_with_the_restricted_unpickler(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (3, 3072)).astype(np.uint8)
  raw = _py2_batch(images, [1, 2, 3])
  assert b"numpy.core.multiarray" in raw and b"_codecs" not in raw  # the published layout
  _cifar10(tmp_path, {"test_batch": raw})
  source = open_dataset(f"cifar10:{tmp_path}", "test")
  np.testing.assert_array_equal(source.labels, [1, 2, 3])
  np.testing.assert_array_equal(source.get(2), images[2].reshape(3, 32, 32).transpose(1, 2, 0))
  for protocol in (2, 4, 5):  # written by Python 3 (numpy scalars in the label list, bytes as _codecs)
    batch = {"data": images, "labels": list(np.arange(3)), "batch_label": b"x", "n": {1, 2.5}}
    (tmp_path / "b").write_bytes(pickle.dumps(batch, protocol=protocol))
    loaded = formats.unpickle(str(tmp_path / "b"))
    np.testing.assert_array_equal(loaded["data"], images)
    assert loaded["labels"] == [0, 1, 2] and loaded["batch_label"] == b"x" and loaded["n"] == {1, 2.5}


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_crafted_cifar_pickle_is_refused_before_it_runs(tmp_path, protocol):
  marker = tmp_path / "ran"
  crafted = pickle.dumps({"data": _Payload(str(marker)), "labels": [0]}, protocol=protocol)
  _cifar10(tmp_path, {"data_batch_1": crafted})
  with pytest.raises(ValueError) as e:
    open_dataset(f"cifar10:{tmp_path}", "train")
  assert not marker.exists()  # os.system was never called
  message = str(e.value)
  assert "\n" not in message and "data_batch_1: not a CIFAR python batch, refused" in message
  assert "system" in message  # the name it tried to call


def test_crafted_cifar_pickle_through_the_extraction_cli(tmp_path, capsys):
  from extract_torch.__main__ import main

  marker = tmp_path / "ran"
  raw = pickle.dumps({"data": np.zeros((1, 3072), np.uint8), "labels": [_Payload(str(marker))]}, protocol=2)
  _cifar10(tmp_path, {"test_batch": raw})
  out = str(tmp_path / "out.npz")
  with pytest.raises(SystemExit, match=r"^error: .*test_batch: not a CIFAR python batch, refused \(it names"):
    main(["--dataset", f"cifar10:{tmp_path}", "--split", "test", "--model", "efficientnet_lite0", "--out", out])
  assert not marker.exists() and not os.path.exists(out)


@pytest.mark.parametrize("raw", [b"", b"\x80\x02}q\x00(", b"not a pickle at all", pickle.dumps([1, 2])])
def test_broken_cifar_batch_is_one_line(tmp_path, raw):
  _cifar10(tmp_path, {"test_batch": raw})
  with pytest.raises(ValueError, match=r"test_batch: not a CIFAR python batch, refused \(.+\)$"):
    open_dataset(f"cifar10:{tmp_path}", "test")


def _png_header(width: int, height: int) -> bytes:
  """A PNG whose header claims ``width x height`` grey pixels (its data is one empty row)."""

  def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

  ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
  return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def test_decompression_bomb_is_the_unreadable_image_error(tmp_path):
  (tmp_path / "cls").mkdir()
  (tmp_path / "cls" / "bomb.png").write_bytes(_png_header(16384, 16384))  # 268 megapixels
  (tmp_path / "cls" / "junk.png").write_bytes(b"not an image")
  source = open_dataset(f"folder:{tmp_path}")
  for i, name in enumerate(("bomb.png", "junk.png")):
    with pytest.raises(ValueError, match=rf"^folder: cannot read image .*{name} \(.+\)$") as e:
      source.get(i)
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------------------
# Bad input: refused before any work, naming the array, what was expected and what was found
# ---------------------------------------------------------------------------

SMALL = ["--preset", "official", "--k", "4", "--num-iters", "3", "--num-subsets", "2", "--subset-size", "300"]
SMALL += ["--adaptation-steps", "3", "--quiet", "--no-baselines", "--no-plots"]


def _bad_cases(tmp_path):
  phi1, phi2, y = planted()
  huge = y.copy()
  huge[5] = 10**12
  constant = np.repeat(phi2[:1], len(phi2), axis=0)
  return {
    "labels 1e12": ({"--labels": huge}, r"--labels: expected class numbers 0..C-1 .* found maximum 1000000000000"),
    "9 rows": (
      {"--phi1": phi1[:9], "--phi2": phi2[:9]},
      r"--phi1 .*phi1.npy: expected at least 10 rows \(samples; the CV score uses 10 folds\), found 9",
    ),
    "9 val rows": (
      {"--phi1-val": phi1[:9], "--phi2-val": phi2[:9]},
      r"--phi1-val .*phi1-val.npy: expected at least 10 rows .*found 9",
    ),
    "complex": ({"--phi1": phi1.astype(np.complex64)}, r"--phi1: expected real numbers .*found dtype complex64"),
    "constant space": ({"--phi2": constant}, r"--phi2: expected rows that differ, found all 600 rows identical"),
  }


@pytest.mark.parametrize("case", ["labels 1e12", "9 rows", "9 val rows", "complex", "constant space"])
def test_bad_input_is_refused_before_any_work(tmp_path, case, monkeypatch):
  import warnings

  from hume_jax import runs, train

  phi1, phi2, _ = planted()
  arrays = {"--phi1": phi1, "--phi2": phi2}
  changes, message = _bad_cases(tmp_path)[case]
  arrays.update(changes)
  argv = []
  for flag, value in arrays.items():
    path = str(tmp_path / f"{flag.strip('-')}.npy")
    np.save(path, value)
    argv += [flag, path]
  trained = []
  monkeypatch.setattr(runs, "train_one", lambda *a, **k: trained.append(1))
  out = str(tmp_path / "out")
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # complex input: an error, not a ComplexWarning
    with pytest.raises(SystemExit, match=message) as e:
      train.main(SMALL + argv + ["--out", out])
  assert "\n" not in str(e.value.code) and not trained
  assert not os.path.exists(out) and not os.path.exists(out + ".partial")


@pytest.mark.parametrize(
  "texts, message",
  [
    (["a cat sat", "a cat ran", "a dog sat"], "expected at least 10 texts .*found 3"),
    ([f"word{i} unique{i}" for i in range(12)], r"expected at least 2 words .*12 texts, found 0"),
  ],
)
def test_too_few_texts_for_tfidf(tmp_path, texts, message):
  from extract_torch.__main__ import main

  path = tmp_path / "texts.txt"
  path.write_text("\n".join(texts) + "\n")
  out = str(tmp_path / "o.npz")
  with pytest.raises(SystemExit, match=rf"^error: --model tfidf: {message}"):
    main(["--texts", str(path), "--model", "tfidf", "--out", out, "--quiet"])
  assert not os.path.exists(out)


# ---------------------------------------------------------------------------
# One writer per run folder
# ---------------------------------------------------------------------------

RUN = ["--preset", "official", "--k", "4", "--num-subsets", "2", "--subset-size", "300", "--adaptation-steps", "5"]
RUN += ["--inner-lr", "0.05", "--outer-lr", "0.01", "--quiet", "--no-baselines", "--no-plots", "--seed", "7"]


def _hold_lock(out: str) -> subprocess.Popen:
  """Another process that takes ``out``'s lock as a run does (and made its partial folder), then waits."""
  code = (
    "import sys, time; from hume_jax.io.workdir import Workdir; "
    f"Workdir({out!r}).prepare(resume=False); print('held', flush=True); time.sleep(600)"
  )
  holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
  assert holder.stdout.readline().strip() == "held"
  return holder


def test_a_second_writer_is_refused_at_once_and_a_stale_lock_is_taken_over(files, tmp_path):
  from hume_jax import train

  out = str(tmp_path / "out")
  holder = _hold_lock(out)
  try:
    (tmp_path / "out.partial" / "theirs").write_text("the other run's file")
    for extra in ([], ["--overwrite"], ["--resume"]):
      t0 = time.perf_counter()
      with pytest.raises(SystemExit, match=rf"--out {out} is being written by process {holder.pid} \(") as e:
        train.main(files + RUN + ["--num-iters", "2", "--out", out] + extra)
      assert time.perf_counter() - t0 < 30 and "\n" not in str(e.value.code)  # at once, before any work
      assert (tmp_path / "out.partial" / "theirs").read_text() == "the other run's file"  # nothing of theirs lost
  finally:
    holder.kill()  # killed: its lock file stays, and the system released the lock
    holder.wait()
  assert os.path.exists(out + ".lock")
  train.main(files + RUN + ["--num-iters", "2", "--out", out, "--overwrite"])
  assert os.path.exists(os.path.join(out, "metrics.json")) and not os.path.exists(out + ".lock")


def test_the_lock_is_held_for_the_whole_run(files, tmp_path, monkeypatch):
  import fcntl

  from hume_jax import train
  from hume_jax.io import checkpoint

  out = str(tmp_path / "out")
  probes = []
  real_save = checkpoint.save_checkpoint

  def save_and_probe(path, *args, **kwargs):
    real_save(path, *args, **kwargs)
    fd = os.open(out + ".lock", os.O_RDONLY)  # as a second process would
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      probes.append("free")
    except BlockingIOError:
      probes.append("held")
    finally:
      os.close(fd)

  monkeypatch.setattr(checkpoint, "save_checkpoint", save_and_probe)
  train.main(files + RUN + ["--num-iters", "4", "--checkpoint-every", "2", "--out", out])
  assert probes and set(probes) == {"held"}
  assert not os.path.exists(out + ".lock") and not os.path.exists(out + ".partial")


def test_concurrent_checkpoint_writers_use_their_own_temporary_files(tmp_path, monkeypatch):
  """Another process saving the same checkpoint between this one's write and rename (the race
  of two runs on one folder) leaves both saves whole."""
  import jax

  from hume_jax.config import HumeConfig
  from hume_jax.core._outer import init_state
  from hume_jax.io import checkpoint

  config = HumeConfig(k=3)
  state = init_state(jax.random.PRNGKey(0), config, 8, 6)
  path = str(tmp_path / "checkpoint.npz")
  real_fsync, pid = os.fsync, os.getpid()

  def other_process_saves_meanwhile(fd):
    real_fsync(fd)
    if os.getpid() == pid:
      monkeypatch.setattr(os, "getpid", lambda: pid + 1)
      checkpoint.save_checkpoint(path, state, config, "other")
      monkeypatch.setattr(os, "getpid", lambda: pid)

  monkeypatch.setattr(os, "fsync", other_process_saves_meanwhile)
  checkpoint.save_checkpoint(path, state, config, "ours")
  monkeypatch.undo()
  loaded = checkpoint.load_checkpoint(path, state, config, "ours")  # the last rename wins, whole
  np.testing.assert_array_equal(loaded.encoder.base, state.encoder.base)
  assert os.listdir(tmp_path) == ["checkpoint.npz"]


def test_a_crash_between_the_commit_renames_is_cleaned_by_the_next_run(files, tmp_path):
  from hume_jax import train

  out = str(tmp_path / "out")
  os.makedirs(out + ".old-999999")  # the first rename happened, then the process died
  (tmp_path / "out.old-999999" / "metrics.json").write_text("{}")
  os.makedirs(out + ".old-backup")  # a user's folder, not a leftover
  train.main(files + RUN + ["--num-iters", "2", "--out", out])
  assert os.path.exists(os.path.join(out, "metrics.json")) and not os.path.exists(out + ".old-999999")
  assert os.path.isdir(out + ".old-backup")


# ---------------------------------------------------------------------------
# Corrupt checkpoints and parts
# ---------------------------------------------------------------------------


def _stop_after_checkpoint(monkeypatch, argv, at: int = 4) -> None:
  """Runs the CLI and stops it (Ctrl-C) right after the checkpoint of iteration ``at``."""
  from hume_jax import train
  from hume_jax.io import checkpoint

  real_save = checkpoint.save_checkpoint

  def save_then_stop(path, state, *args, **kwargs):
    real_save(path, state, *args, **kwargs)
    if int(np.asarray(state.step).reshape(-1)[0]) >= at:
      raise KeyboardInterrupt

  monkeypatch.setattr(checkpoint, "save_checkpoint", save_then_stop)
  with pytest.raises(SystemExit, match="interrupted"):
    train.main(argv)
  monkeypatch.setattr(checkpoint, "save_checkpoint", real_save)


def _damage(path: str, how: str) -> None:
  raw = open(path, "rb").read()
  damaged = {
    "truncated": raw[: len(raw) // 2],
    "emptied": b"",
    "bit-flipped": raw[:100] + bytes([raw[100] ^ 0x10]) + raw[101:],
    "text": b"checkpoint lost, see the backup\n",
  }[how]
  with open(path, "wb") as f:
    f.write(damaged)


@pytest.mark.parametrize("how", ["truncated", "emptied", "bit-flipped", "text"])
@pytest.mark.parametrize("protocol", ["single", "seeds"])
def test_a_damaged_checkpoint_is_one_line_naming_it(files, tmp_path, monkeypatch, capsys, how, protocol):
  from hume_jax import train

  out = str(tmp_path / "out")
  extra = ["--seeds", "2"] if protocol == "seeds" else []
  argv = files + RUN + extra + ["--num-iters", "8", "--checkpoint-every", "4", "--out", out]
  _stop_after_checkpoint(monkeypatch, argv)
  partial = out + ".partial"
  path = (
    os.path.join(partial, "checkpoint.npz") if protocol == "single" else os.path.join(partial, "parts", "seeds_0.npz")
  )
  _damage(path, how)
  with pytest.raises(SystemExit) as e:
    train.main(argv + ["--resume"])
  message = str(e.value.code)
  assert message.startswith(f"error: checkpoint {path} is damaged") and "\n" not in message
  assert "pass --overwrite" in message and "allow_pickle" not in message
  assert os.path.exists(path)  # nothing discarded without asking
  train.main(argv + ["--overwrite"])
  assert os.path.exists(os.path.join(out, "metrics.json"))


def test_a_checksum_catches_what_the_archive_does_not(tmp_path):
  """An archive rewritten whole with one value changed (its zip checks hold) is refused."""
  import jax

  from hume_jax.config import HumeConfig
  from hume_jax.core._outer import init_state
  from hume_jax.io import checkpoint

  config = HumeConfig(k=3)
  state = init_state(jax.random.PRNGKey(0), config, 8, 6)
  path = str(tmp_path / "c.npz")
  checkpoint.save_checkpoint(path, state, config, "id")
  with np.load(path) as f:
    arrays = {k: f[k] for k in f.files}
  arrays["leaf_0"] = arrays["leaf_0"] + 1
  np.savez(path, **arrays)
  with pytest.raises(ValueError, match=rf"checkpoint {path} is damaged \(its content does not match its checksum\)"):
    checkpoint.load_checkpoint(path, state, config, "id")


# ---------------------------------------------------------------------------
# Resume rules
# ---------------------------------------------------------------------------


def test_a_checkpoint_beyond_num_iters_is_refused(files, tmp_path, monkeypatch):
  from hume_jax import train

  out = str(tmp_path / "out")
  argv = files + RUN + ["--checkpoint-every", "4", "--out", out]
  _stop_after_checkpoint(monkeypatch, argv + ["--num-iters", "20"], at=8)
  with pytest.raises(SystemExit, match=r"checkpoint .*checkpoint.npz is at iteration 8, beyond --num-iters 5; "):
    train.main(argv + ["--num-iters", "5", "--resume"])
  train.main(argv + ["--num-iters", "12", "--resume"])  # a larger --num-iters continues it
  import json

  assert json.load(open(os.path.join(out, "config.json")))["hume"]["num_iters"] == 12


def test_resume_with_seeds_on_a_single_run_checkpoint_says_it_cannot(files, tmp_path, monkeypatch):
  from hume_jax import runs, train

  out = str(tmp_path / "out")
  argv = files + RUN + ["--num-iters", "8", "--checkpoint-every", "4", "--out", out]
  _stop_after_checkpoint(monkeypatch, argv)
  trained = []
  monkeypatch.setattr(runs, "train_seeds", lambda *a, **k: trained.append(1))
  with pytest.raises(SystemExit, match=r"--resume: .*out.partial holds a single run's checkpoint, which this command "):
    train.main(argv + ["--seeds", "2", "--resume"])
  assert not trained and os.path.exists(os.path.join(out + ".partial", "checkpoint.npz"))


def test_the_printed_resume_command_of_an_overwrite_run_resumes(files, tmp_path, monkeypatch, capsys):
  import shlex

  from hume_jax import train

  out = str(tmp_path / "out")
  argv = files + RUN + ["--num-iters", "6", "--checkpoint-every", "2", "--out", out]
  train.main(argv)
  _stop_after_checkpoint(monkeypatch, argv + ["--overwrite"], at=2)
  command = capsys.readouterr().err.strip().splitlines()[-1]
  assert "--overwrite" in command and command.endswith("--resume")
  train.main(shlex.split(command)[3:])  # python -m hume_jax.train ARGS
  assert os.path.exists(os.path.join(out, "metrics.json")) and not os.path.exists(out + ".partial")
