"""extract_torch registry: every architecture builds, has its published size, loads local checkpoints."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from extract_torch import architectures as A  # noqa: E402
from extract_torch.models import MODELS, build_model  # noqa: E402
from extract_torch.preprocess import Preprocess, center_crop, resize_shorter  # noqa: E402

# Torch architectures of the registry (the two offline models are tested in test_extract.py).
TORCH_MODELS = [m for m in MODELS if m not in ("efficientnet_lite0", "open_nsfw")]


def _photo():
  from sklearn.datasets import load_sample_images

  return load_sample_images().images[1][None]  # flower.jpg, [1, 427, 640, 3] uint8


@pytest.mark.parametrize("name", [m for m in TORCH_MODELS if m != "dinov2_vitg14"])
def test_random_weights_give_documented_dim_on_a_real_photo(name):
  torch.manual_seed(0)
  extractor = build_model(name, weights="random")
  feats = extractor(_photo())
  assert feats.shape == (1, MODELS[name].dim) and feats.dtype == np.float32
  assert np.isfinite(feats).all() and np.abs(feats).max() > 0


def test_vit_giant_on_the_meta_device():
  with torch.device("meta"):
    net = A.DinoVisionTransformer("vitg14")
    out = net(torch.empty(2, 3, 224, 224))
  assert out.shape == (2, MODELS["dinov2_vitg14"].dim)


@pytest.mark.parametrize(
  "make, published",
  [
    # Parameter counts published with the official models (torchvision's model tables,
    # the DINOv2 hub models, CLIP's image towers).
    (lambda: A.ResNet(), 25_557_032),
    (lambda: A.VGG(), 138_357_544),
    (lambda: A.DinoVisionTransformer("vits14"), 22_056_576),
    (lambda: A.DinoVisionTransformer("vitb14"), 86_580_480),
    (lambda: A.DinoVisionTransformer("vitl14"), 304_368_640),
    (lambda: A.DinoVisionTransformer("vitg14"), 1_136_480_768),
    (lambda: A.ClipVisionTransformer("ViT-B/32"), 87_849_216),
    (lambda: A.ClipVisionTransformer("ViT-L/14"), 303_966_208),
  ],
)
def test_parameter_counts_match_the_official_models(make, published):
  with torch.device("meta"):
    net = make()
  assert sum(p.numel() for p in net.parameters()) == published


def test_dinov2_keys_are_the_hub_checkpoint_keys():
  with torch.device("meta"):
    sd = A.DinoVisionTransformer("vits14").state_dict()
  assert sd["pos_embed"].shape == (1, 37 * 37 + 1, 384)  # hub models are built at img_size 518
  assert sd["patch_embed.proj.weight"].shape == (384, 3, 14, 14)
  assert {
    "cls_token",
    "mask_token",
    "norm.weight",
    "blocks.11.ls2.gamma",
    "blocks.0.attn.qkv.weight",
    "blocks.0.mlp.fc1.weight",
  } <= set(sd)
  with torch.device("meta"):
    g = A.DinoVisionTransformer("vitg14").state_dict()
  assert g["blocks.39.mlp.w12.weight"].shape == (2 * 4096, 1536) and g["blocks.0.mlp.w3.weight"].shape == (1536, 4096)


def test_moco_checkpoint_loads_from_a_local_file(tmp_path):
  """A MoCo v2 training checkpoint: keys under module.encoder_q., an MLP head, optimizer state."""
  torch.manual_seed(1)
  net = A.ResNet(num_classes=None).eval()
  for m in net.modules():  # non-trivial batch-norm statistics
    if isinstance(m, torch.nn.BatchNorm2d):
      m.running_mean.uniform_(-0.1, 0.1)
      m.running_var.uniform_(0.5, 1.5)
  state = {f"module.encoder_q.{k}": v for k, v in net.state_dict().items()}
  state.update(
    {
      "module.encoder_q.fc.0.weight": torch.zeros(2048, 2048),
      "module.encoder_q.fc.2.weight": torch.zeros(128, 2048),
      "module.encoder_k.conv1.weight": torch.zeros(64, 3, 7, 7),
    }
  )
  path = tmp_path / "moco.pth.tar"
  torch.save({"epoch": 800, "arch": "resnet50", "state_dict": state, "optimizer": {"state": {}}}, path)
  extractor = build_model("moco_v2_resnet50", weights=str(path))
  x = np.stack([extractor.preprocess(im) for im in _photo()])
  with torch.inference_mode():
    expected = net(torch.from_numpy(x)).numpy()
  np.testing.assert_allclose(extractor.forward(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore")  # tracing and torch.jit.load warnings
def test_clip_torchscript_archive_loads(tmp_path):
  """OpenAI's CLIP checkpoints are TorchScript archives of the whole model (keys visual.*)."""
  torch.manual_seed(2)

  class Clip(torch.nn.Module):
    def __init__(self):
      super().__init__()
      self.visual = A.ClipVisionTransformer("ViT-B/32")
      self.logit_scale = torch.nn.Parameter(torch.ones([]))

    def forward(self, x):
      return self.visual(x)

  model = Clip().eval()
  path = tmp_path / "ViT-B-32.pt"
  torch.jit.trace(model, torch.zeros(1, 3, 224, 224), check_trace=False).save(str(path))
  extractor = build_model("clip_vit_b32", weights=str(path))
  x = np.stack([extractor.preprocess(im) for im in _photo()])
  with torch.inference_mode():
    expected = model(torch.from_numpy(x)).numpy()
  np.testing.assert_allclose(extractor.forward(x), expected, rtol=1e-4, atol=1e-5)


def test_dinov2_state_dict_round_trip_and_mismatch_errors(tmp_path):
  torch.manual_seed(3)
  net = A.DinoVisionTransformer("vits14").eval()
  torch.save(net.state_dict(), tmp_path / "dinov2_vits14.pth")
  extractor = build_model("dinov2_vits14", weights=str(tmp_path / "dinov2_vits14.pth"))
  x = np.stack([extractor.preprocess(im) for im in _photo()])
  with torch.inference_mode():
    np.testing.assert_allclose(extractor.forward(x), net(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match=r"does not fit dinov2_vitb14: .*shape mismatches"):
    build_model("dinov2_vitb14", weights=str(tmp_path / "dinov2_vits14.pth"))
  (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
  with pytest.raises(ValueError, match="cannot read .*junk.pth as a PyTorch checkpoint"):
    build_model("resnet50", weights=str(tmp_path / "junk.pth"))
  with pytest.raises(FileNotFoundError, match="--weights: no such file"):
    build_model("resnet50", weights=str(tmp_path / "missing.pth"))


def test_bad_model_and_device_requests():
  with pytest.raises(ValueError, match="registered models"):
    build_model("resnet9000")
  with pytest.raises(ValueError, match="--half needs a GPU"):
    build_model("resnet50", weights="random", device="cpu", half=True)


def test_preprocessing_geometry_in_closed_form():
  """Shorter side to `resize`, centre crop with torchvision's rounding, per-channel standardisation."""
  from PIL import Image

  w, h = 640, 427
  img = np.zeros((h, w, 3), np.uint8)
  img[..., 0] = (np.arange(w) * 255 // (w - 1))[None, :]  # red grows with x
  pil = Image.fromarray(img)
  r = resize_shorter(pil, 256)
  assert r.size == (int(256 * 640 / 427), 256)  # (383, 256)
  c = center_crop(r, 224)
  assert c.size == (224, 224)
  left = int(round((383 - 224) / 2.0))
  np.testing.assert_array_equal(np.asarray(c), np.asarray(r)[16:240, left : left + 224])
  x = Preprocess(256, 224, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))(img)
  assert x.shape == (3, 224, 224) and x.dtype == np.float32
  np.testing.assert_allclose(x[1], (0 / 255 - 0.5) / 0.25)
  np.testing.assert_allclose(x[0], (np.asarray(c)[..., 0] / 255 - 0.5) / 0.25, atol=1e-6)
  grey = Preprocess(32, 32)(np.full((32, 32), 255, np.uint8))  # grey arrays become RGB
  np.testing.assert_allclose(
    grey[:, 0, 0], (1 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225]), rtol=1e-6
  )


def test_download_cache_checks_the_hash_in_the_url(tmp_path, monkeypatch):
  import hashlib

  from extract_torch.weights import download

  monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
  (tmp_path / "checkpoints").mkdir()
  payload = b"weights"
  digest = hashlib.sha256(payload).hexdigest()
  (tmp_path / "checkpoints" / "ViT-X.pt").write_bytes(payload)
  assert download(f"https://example.org/clip/models/{digest}/ViT-X.pt") == str(tmp_path / "checkpoints" / "ViT-X.pt")
  (tmp_path / "checkpoints" / f"net-{digest[:8]}.pth").write_bytes(payload)
  assert download(f"https://example.org/models/net-{digest[:8]}.pth").endswith(f"net-{digest[:8]}.pth")
  (tmp_path / "checkpoints" / "ViT-X.pt").write_bytes(b"corrupted")
  with pytest.raises(ValueError, match="does not match"):
    download(f"https://example.org/clip/models/{digest}/ViT-X.pt")
  with pytest.raises(RuntimeError, match="pass it with --weights FILE"):
    download("http://127.0.0.1:9/unreachable.pth")  # nothing listens on the discard port


def test_timm_entry_wires_weights_and_preprocessing(monkeypatch):
  """timm needs torchvision, which these machines cannot import beside the CPU torch; a stand-in
  module checks how its API is called and how its data config becomes preprocessing."""
  import sys
  import types

  calls = {}

  def create_model(name, pretrained, **kwargs):
    calls.update(name=name, pretrained=pretrained, **kwargs)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(7))
    net.num_features = 7
    return net

  data = types.SimpleNamespace(
    resolve_data_config=lambda args, model: {
      "input_size": (3, 160, 160),
      "interpolation": "bicubic",
      "mean": (0.5, 0.5, 0.5),
      "std": (0.5, 0.5, 0.5),
      "crop_pct": 0.8,
    }
  )
  monkeypatch.setitem(sys.modules, "timm", types.SimpleNamespace(create_model=create_model, data=data))
  extractor = build_model("timm:convnext_tiny", weights="random")
  assert calls == {"name": "convnext_tiny", "pretrained": False, "num_classes": 0}
  assert extractor.preprocess.resize == 200 and extractor.preprocess.crop == 160
  assert extractor(_photo()).shape == (1, 7) and extractor.dim == 7
