"""``python -m extract_torch``: image folder -> features -> HUME result; resume; official layout; errors."""

import dataclasses
import json
import os

import numpy as np
import pytest
from conftest import digit_pngs

pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite_pytorch")

from extract_torch import __main__ as cli  # noqa: E402
from extract_torch.datasets import open_dataset  # noqa: E402
from extract_torch.extract import run_extraction  # noqa: E402
from extract_torch.models import build_model  # noqa: E402

FAST = ["--model", "efficientnet_lite0", "--image-size", "32", "--quiet"]


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory):
  """Real images: scikit-learn's handwritten digits 0, 1, 2 (30 each) as PNG files in class subfolders."""
  return digit_pngs(tmp_path_factory.mktemp("digits"), 30)


def test_help_lists_models_and_dataset_kinds(capsys):
  with pytest.raises(SystemExit) as e:
    cli.main(["--help"])
  assert e.value.code == 0
  text = capsys.readouterr().out
  for word in (
    "dinov2_vitg14",
    "clip_vit_l14",
    "moco_v2_resnet50",
    "vgg16",
    "open_nsfw",
    "timm:NAME",
    "tfds:NAME",
    "cifar100-20:ROOT",
    "folder:PATH",
    "--resume",
    "--official-layout",
    "--half",
  ):
    assert word in text, word


def test_image_folder_to_a_hume_result(digit_folder, tmp_path):
  """The images tutorial's path (docs/tutorials/cifar10.md): a folder of images -> two representations ->
  python -m hume_jax.train."""
  from hume_jax import train

  phi1, phi2 = str(tmp_path / "eff.npz"), str(tmp_path / "nsfw.npz")
  common = ["--dataset", f"folder:{digit_folder}", "--quiet"]
  assert cli.main(common + ["--model", "efficientnet_lite0", "--image-size", "112", "--out", phi1]) == 0
  assert cli.main(common + ["--model", "open_nsfw", "--out", phi2]) == 0
  f = np.load(phi2)
  meta = json.loads(str(f["meta"]))
  assert f["features"].shape == (90, 1024) and f["features"].dtype == np.float32
  np.testing.assert_array_equal(f["labels"], np.repeat([0, 1, 2], 30))
  np.testing.assert_array_equal(f["indices"], np.arange(90))
  assert meta["model"] == "open_nsfw" and meta["dim"] == 1024
  assert meta["class_names"] == ["digit_0", "digit_1", "digit_2"]
  assert "JPEG round trip" in meta["preprocessing"] and meta["versions"]["torch"]
  res = train.main(
    [
      "--phi1",
      phi1,
      "--phi2",
      phi2,
      "--labels",
      f"{phi2}:labels",
      "--k",
      "3",
      "--num-iters",
      "30",
      "--num-subsets",
      "4",
      "--subset-size",
      "80",
      "--out",
      str(tmp_path / "run"),
      "--quiet",
      "--no-plots",
      "--no-baselines",
    ]
  )
  assert res["splits"]["train"]["acc"] > 0.75  # digits 0/1/2 told apart without labels (seeds 1-3: 82-91%)


class _InterruptAt:
  """A source whose reading stops with Ctrl-C at image ``stop`` (as a user would)."""

  def __init__(self, source, stop):
    self.source, self.stop = source, stop

  def __call__(self, i):
    if i == self.stop:
      raise KeyboardInterrupt
    return self.source.get(i)


def test_resume_after_interruption_gives_the_uninterrupted_file(digit_folder, tmp_path):
  source = open_dataset(f"folder:{digit_folder}")
  extractor = build_model("efficientnet_lite0", image_size=32)
  kw = dict(dataset=f"folder:{digit_folder}", split="train", batch_size=16, chunk_size=32, progress=False)
  whole = run_extraction(source, extractor, str(tmp_path / "whole.npz"), **kw)
  out = str(tmp_path / "out.npz")
  with pytest.raises(KeyboardInterrupt):
    run_extraction(dataclasses.replace(source, get=_InterruptAt(source, 70)), extractor, out, **kw)
  assert not os.path.exists(out)
  assert sorted(os.listdir(out + ".partial")) == ["chunk_000000.npy", "chunk_000001.npy", "meta.json"]
  with pytest.raises(FileExistsError, match="interrupted run; pass --resume"):
    run_extraction(source, extractor, out, **kw)
  other = build_model("efficientnet_lite0", image_size=48)
  with pytest.raises(ValueError, match="other settings .*image_size: 32 then, 48 now"):
    run_extraction(source, other, out, resume=True, **kw)
  resumed = run_extraction(source, extractor, out, resume=True, **kw)
  assert not os.path.exists(out + ".partial")
  for key in ("features", "indices", "labels", "meta"):
    np.testing.assert_array_equal(resumed[key], whole[key])
    np.testing.assert_array_equal(np.load(out)[key], whole[key])


def test_ctrl_c_prints_the_resume_command(digit_folder, tmp_path, monkeypatch, capsys):
  import extract_torch.extract as ex

  def interrupted(*args, **kwargs):
    raise KeyboardInterrupt

  monkeypatch.setattr(ex, "run_extraction", interrupted)
  argv = ["--dataset", f"folder:{digit_folder}", "--out", str(tmp_path / "x.npz")] + FAST
  assert cli.main(argv) == 130
  err = capsys.readouterr().err
  assert "python -m extract_torch --dataset folder:" in err and err.rstrip().endswith("--resume")


def test_existing_output_is_kept(digit_folder, tmp_path):
  out = tmp_path / "x.npz"
  out.write_bytes(b"a user's result")
  with pytest.raises(SystemExit, match="exists; pass --overwrite"):
    cli.main(["--dataset", f"folder:{digit_folder}", "--out", str(out)] + FAST)
  assert out.read_bytes() == b"a user's result"
  with pytest.raises(SystemExit, match="expected a path ending in .npz or .npy"):
    cli.main(["--dataset", f"folder:{digit_folder}", "--out", str(tmp_path / "x.npx")] + FAST)
  with pytest.raises(SystemExit, match="no such folder"):
    cli.main(["--dataset", f"folder:{tmp_path / 'none'}", "--out", str(tmp_path / "y.npz")] + FAST)


def test_official_layout(digit_folder, tmp_path):
  root = tmp_path / "hume_data"
  assert (
    cli.main(
      [
        "--dataset",
        f"folder:{digit_folder}",
        "--split",
        "train+test",
        "--out",
        str(tmp_path / "a.npz"),
        "--official-layout",
        str(root),
        "--layout-name",
        "digits",
        "--l2",
        "--limit",
        "10",
      ]
      + FAST
    )
    == 0
  )
  rep = root / "representations" / "efficientnet_lite0"
  assert sorted(os.listdir(rep)) == ["digitstraintest.npy", "digitstraintest_l2.npy"]
  x, x_l2 = np.load(rep / "digitstraintest.npy"), np.load(rep / "digitstraintest_l2.npy")
  assert x.shape == (10, 1280) and x.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(x_l2, axis=1), 1, rtol=1e-5)
  np.testing.assert_allclose(x_l2 * np.linalg.norm(x, axis=1, keepdims=True), x, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(np.load(root / "labels" / "digitstraintest_targets.npy"), np.zeros(10))
  np.testing.assert_array_equal(x, np.load(tmp_path / "a.npz")["features"])


def test_tfds_end_to_end_with_mock_data(tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=8, policy=tfds.testing.MockPolicy.USE_CODE):
    assert (
      cli.main(
        ["--dataset", "tfds:cifar10", "--split", "test", "--out", str(tmp_path / "c.npz"), "--batch-size", "4"] + FAST
      )
      == 0
    )
  f = np.load(tmp_path / "c.npz")
  assert f["features"].shape == (8, 1280) and f["labels"].shape == (8,)
  assert json.loads(str(f["meta"]))["dataset"] == "tfds:cifar10"


def test_hume_reads_the_features_of_an_extraction_file(tmp_path):
  from hume_jax.io.data import load_array

  np.savez(tmp_path / "e.npz", features=np.ones((3, 2), np.float32), labels=np.arange(3), meta=np.array("{}"))
  assert load_array(str(tmp_path / "e.npz"), "--phi1").shape == (3, 2)
  assert load_array(f"{tmp_path / 'e.npz'}:labels", "--labels").tolist() == [0, 1, 2]


def test_real_sigint_then_resume(tmp_path):
  """A real Ctrl-C (SIGINT) to the CLI keeps the finished chunks; --resume completes the file."""
  import signal
  import subprocess
  import sys
  import time

  from sklearn.datasets import load_digits

  images = np.repeat((load_digits().images[:600] * 255 / 16).astype(np.uint8), 4, axis=1).repeat(4, axis=2)
  np.save(tmp_path / "digits.npy", images)  # 600 images, 32x32
  out = str(tmp_path / "f.npz")
  args = [
    sys.executable,
    "-m",
    "extract_torch",
    "--dataset",
    f"npy:{tmp_path / 'digits.npy'}",
    "--out",
    out,
    "--chunk-size",
    "32",
    "--batch-size",
    "32",
    "--model",
    "efficientnet_lite0",
    "--image-size",
    "112",
    "--quiet",
  ]
  proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  first = os.path.join(out + ".partial", "chunk_000000.npy")
  deadline = time.time() + 120
  while not os.path.exists(first) and proc.poll() is None and time.time() < deadline:
    time.sleep(0.05)
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 130, err[-1500:]
  assert "--resume" in err and not os.path.exists(out)
  done = [f for f in os.listdir(out + ".partial") if f.startswith("chunk_")]
  assert 1 <= len(done) < 19  # some, not all, of the 19 chunks
  res = subprocess.run(args + ["--resume"], capture_output=True, text=True)
  assert res.returncode == 0, res.stderr[-1500:]
  whole = run_extraction(
    open_dataset(f"npy:{tmp_path / 'digits.npy'}"),
    build_model("efficientnet_lite0", image_size=112),
    str(tmp_path / "whole.npz"),
    dataset=f"npy:{tmp_path / 'digits.npy'}",
    split="train",
    batch_size=32,
    chunk_size=32,
    progress=False,
  )
  np.testing.assert_array_equal(np.load(out)["features"], whole["features"])


def test_a_second_extraction_to_the_same_file_is_refused_and_a_killed_ones_lock_taken_over(digit_folder, tmp_path):
  import subprocess
  import sys

  source = open_dataset(f"folder:{digit_folder}")
  extractor = build_model("efficientnet_lite0", image_size=32)
  kw = dict(dataset=f"folder:{digit_folder}", split="train", batch_size=16, chunk_size=32, progress=False)
  out = str(tmp_path / "out.npz")
  code = (
    "import time; from extract_torch.lock import one_writer\n"
    f"with one_writer({out!r}):\n  print('held', flush=True); time.sleep(600)"
  )
  holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(ValueError, match=rf"--out {out} is being written by process {holder.pid} \("):
      run_extraction(source, extractor, out, **kw)
    assert not os.path.exists(out) and not os.path.exists(out + ".partial")  # nothing started
  finally:
    holder.kill()
    holder.wait()
  assert os.path.exists(out + ".lock")  # left by the killed process, whose lock the system released
  assert run_extraction(source, extractor, out, **kw)["features"].shape[0] == len(source)
  assert not os.path.exists(out + ".lock")
