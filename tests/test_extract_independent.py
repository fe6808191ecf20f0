"""extract_torch's networks against an independent definition: Hugging Face ``transformers``.

Each test builds the ``transformers`` model with random weights (every parameter and buffer
redrawn, so that layer scales, norms and batch-norm statistics are not at their identity
init), converts its state dict to the official key names, loads it into
``extract_torch.architectures`` with ``strict=True`` and compares the features on the same
images. The conversions are written here from the two module trees, not taken from either
package. VGG-16 has no ``transformers`` definition; MoCo v2 is the same ResNet-50.
"""

import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from extract_torch import architectures as A  # noqa: E402

TOL = 1e-5  # float32, features of order 1


def _randomize(model, seed: int):
  """Every float parameter and buffer of ``model`` redrawn: N(0, 0.02) weights, biases and
  norms' affine terms around their init, batch-norm variances positive."""
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
      if not t.dtype.is_floating_point:
        continue
      noise = torch.randn(t.shape, generator=g)
      if name.endswith("running_var"):
        t.copy_(0.5 + torch.rand(t.shape, generator=g))
      elif t.ndim == 1 and re.search(r"(norm|layernorm|layrnorm|layer_norm\d?|normalization|lambda1)\.?\w*$", name):
        t.copy_(1.0 + 0.1 * noise if name.endswith(("weight", "lambda1")) else 0.1 * noise)
      else:
        t.copy_(0.02 * noise if t.ndim > 1 or "embedding" in name or "token" in name else 0.05 * noise)
  return model.eval()


def _images(n: int, size: int, seed: int = 0) -> torch.Tensor:
  """Normalised images ``[n, 3, size, size]``: a real photo's crop and noise."""
  from sklearn.datasets import load_sample_images

  photo = torch.tensor(load_sample_images().images[1][:, :427], dtype=torch.float32).permute(2, 0, 1) / 255
  photo = torch.nn.functional.interpolate(photo[None], size=(size, size), mode="bilinear")[0]
  noise = torch.rand((n - 1, 3, size, size), generator=torch.Generator().manual_seed(seed))
  x = torch.cat([photo[None], noise])
  return (x - 0.45) / 0.25


def _close(ours: torch.Tensor, theirs: torch.Tensor):
  ours, theirs = ours.detach().numpy(), theirs.detach().numpy()
  assert ours.shape == theirs.shape
  scale = max(np.abs(theirs).max(), 1.0)
  np.testing.assert_allclose(ours / scale, theirs / scale, atol=TOL, rtol=0)


# ---------------------------------------------------------------------------
# DINOv2: transformers' Dinov2Model -> facebookresearch/dinov2 hub keys
# ---------------------------------------------------------------------------


def _dinov2_to_official(sd: dict, depth: int) -> dict:
  out = {
    "cls_token": sd["embeddings.cls_token"],
    "mask_token": sd["embeddings.mask_token"],
    "pos_embed": sd["embeddings.position_embeddings"],
    "patch_embed.proj.weight": sd["embeddings.patch_embeddings.projection.weight"],
    "patch_embed.proj.bias": sd["embeddings.patch_embeddings.projection.bias"],
    "norm.weight": sd["layernorm.weight"],
    "norm.bias": sd["layernorm.bias"],
  }
  for i in range(depth):
    h, o = f"encoder.layer.{i}.", f"blocks.{i}."
    att = h + "attention."
    for p in ("weight", "bias"):
      out[o + f"attn.qkv.{p}"] = torch.cat([sd[att + f"{q}_proj.{p}"] for q in "qkv"])
      out[o + f"attn.proj.{p}"] = sd[att + f"o_proj.{p}"]
      for name in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
        out[o + f"{name}.{p}"] = sd[h + f"{name}.{p}"]
    out[o + "ls1.gamma"] = sd[h + "layer_scale1.lambda1"]
    out[o + "ls2.gamma"] = sd[h + "layer_scale2.lambda1"]
  return out


@pytest.fixture(scope="module")
def dinov2_pair():
  """ViT-S/14 as the hub builds it (518 px position grid), and the same weights in ``transformers``."""
  dim, depth, heads, _ = A.DINOV2_ARCHS["vits14"]
  config = transformers.Dinov2Config(
    hidden_size=dim,
    num_hidden_layers=depth,
    num_attention_heads=heads,
    mlp_ratio=4,
    image_size=518,
    patch_size=14,
    layerscale_value=1.0,
    layer_norm_eps=1e-6,
    hidden_act="gelu",
  )
  theirs = _randomize(transformers.Dinov2Model(config), seed=1)
  ours = A.DinoVisionTransformer("vits14").eval()
  ours.load_state_dict(_dinov2_to_official(theirs.state_dict(), depth), strict=True)
  return ours, theirs


def _hub_interpolation(monkeypatch):
  """The hub models resample the 37 x 37 position grid with ``scale_factor = (g + 0.1) / 37``
  (``interpolate_offset=0.1`` in dinov2's ``vision_transformer.py``); ``transformers`` asks for
  the output size ``g`` instead, which samples a slightly different grid. While this is in
  effect, ``transformers``' bicubic call samples the hub's grid."""
  interpolate = torch.nn.functional.interpolate

  def hub(x, size=None, scale_factor=None, **kw):
    if size is not None and x.shape[-1] == 37:
      return interpolate(x, scale_factor=tuple((g + 0.1) / 37 for g in size), **kw)
    return interpolate(x, size=size, scale_factor=scale_factor, **kw)

  monkeypatch.setattr(torch.nn.functional, "interpolate", hub)


def test_dinov2_class_token_equals_transformers_at_the_stored_grid(dinov2_pair):
  ours, theirs = dinov2_pair
  x = _images(2, 518)  # 37 x 37 patches: the position embeddings as stored
  with torch.no_grad():
    _close(ours(x), theirs(pixel_values=x).pooler_output)


def test_dinov2_class_token_equals_transformers_at_224_px(dinov2_pair, monkeypatch):
  ours, theirs = dinov2_pair
  x = _images(2, 224)  # 16 x 16 patches: the grid is resampled
  with torch.no_grad():
    mine = ours(x)
    plain = theirs(pixel_values=x).pooler_output
    _hub_interpolation(monkeypatch)
    hub = theirs(pixel_values=x).pooler_output
  _close(mine, hub)
  assert np.abs((plain - hub).numpy()).max() > 10 * TOL  # the two resamplings do differ: the check can fail


# ---------------------------------------------------------------------------
# CLIP: transformers' CLIPVisionModelWithProjection -> OpenAI CLIP ``visual.*`` keys
# ---------------------------------------------------------------------------


def _clip_to_official(sd: dict, layers: int) -> dict:
  v = "vision_model."
  out = {
    "class_embedding": sd[v + "embeddings.class_embedding"],
    "conv1.weight": sd[v + "embeddings.patch_embedding.weight"],
    "positional_embedding": sd[v + "embeddings.position_embedding.weight"],
    "proj": sd["visual_projection.weight"].T,
  }
  for p in ("weight", "bias"):
    out[f"ln_pre.{p}"] = sd[v + f"pre_layrnorm.{p}"]
    out[f"ln_post.{p}"] = sd[v + f"post_layernorm.{p}"]
  for i in range(layers):
    h, o = v + f"encoder.layers.{i}.", f"transformer.resblocks.{i}."
    for p in ("weight", "bias"):
      out[o + f"attn.in_proj_{p}"] = torch.cat([sd[h + f"self_attn.{q}_proj.{p}"] for q in "qkv"])
      out[o + f"attn.out_proj.{p}"] = sd[h + f"self_attn.out_proj.{p}"]
      out[o + f"ln_1.{p}"] = sd[h + f"layer_norm1.{p}"]
      out[o + f"ln_2.{p}"] = sd[h + f"layer_norm2.{p}"]
      out[o + f"mlp.c_fc.{p}"] = sd[h + f"mlp.fc1.{p}"]
      out[o + f"mlp.c_proj.{p}"] = sd[h + f"mlp.fc2.{p}"]
  return out


def test_clip_image_embedding_equals_transformers():
  patch, width, layers, heads, out_dim = A.CLIP_ARCHS["ViT-B/32"]
  config = transformers.CLIPVisionConfig(
    hidden_size=width,
    intermediate_size=4 * width,
    num_hidden_layers=layers,
    num_attention_heads=heads,
    image_size=224,
    patch_size=patch,
    projection_dim=out_dim,
    hidden_act="quick_gelu",
    layer_norm_eps=1e-5,
  )
  theirs = _randomize(transformers.CLIPVisionModelWithProjection(config), seed=2)
  ours = A.ClipVisionTransformer("ViT-B/32").eval()
  ours.load_state_dict(_clip_to_official(theirs.state_dict(), layers), strict=True)
  x = _images(2, 224)
  with torch.no_grad():
    _close(ours(x), theirs(pixel_values=x).image_embeds)


# ---------------------------------------------------------------------------
# ResNet-50: transformers' ResNetModel (v1.5) -> torchvision keys
# ---------------------------------------------------------------------------


def _resnet_to_official(sd: dict, depths: tuple[int, ...]) -> dict:
  def conv_bn(src: str, conv: str, bn: str) -> dict:
    d = {f"{conv}.weight": sd[f"{src}.convolution.weight"]}
    for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
      d[f"{bn}.{p}"] = sd[f"{src}.normalization.{p}"]
    return d

  out = conv_bn("embedder.embedder", "conv1", "bn1")
  for s, blocks in enumerate(depths):
    for b in range(blocks):
      h, o = f"encoder.stages.{s}.layers.{b}", f"layer{s + 1}.{b}"
      for j in range(3):
        out.update(conv_bn(f"{h}.layer.{j}", f"{o}.conv{j + 1}", f"{o}.bn{j + 1}"))
      if f"{h}.shortcut.convolution.weight" in sd:
        out.update(conv_bn(f"{h}.shortcut", f"{o}.downsample.0", f"{o}.downsample.1"))
  return out


def test_resnet50_pooled_features_equal_transformers():
  depths = (3, 4, 6, 3)
  config = transformers.ResNetConfig(
    depths=list(depths),
    hidden_sizes=[256, 512, 1024, 2048],
    layer_type="bottleneck",
    downsample_in_first_stage=False,
    downsample_in_bottleneck=False,
  )
  theirs = _randomize(transformers.ResNetModel(config), seed=3)
  ours = A.ResNet(num_classes=None).eval()
  ours.load_state_dict(_resnet_to_official(theirs.state_dict(), depths), strict=True)
  x = _images(2, 224)
  with torch.no_grad():
    _close(ours(x), theirs(pixel_values=x).pooler_output.flatten(1))


# ---------------------------------------------------------------------------
# Preprocessing: transformers' PIL image processors with the authors' settings
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["_CLIP", "_DINOV2", "_IMAGENET"])
def test_preprocessing_equals_transformers_image_processors(entry):
  """The same resize-shorter-side, centre-crop and standardisation, from ``transformers``' PIL
  processors configured as the authors' transforms (CLIP's ``_transform``; DINOv2's and
  torchvision's ImageNet evaluation transforms). A 400 x 600 photo keeps the crop margins
  even, where ``transformers`` (floor) and torchvision (round half to even) centre alike."""
  from sklearn.datasets import load_sample_images
  from transformers.image_utils import PILImageResampling

  from extract_torch import models

  pre = getattr(models, entry)
  image = load_sample_images().images[1][:400, :600]
  cls = getattr(transformers, "BitImageProcessorPil", None) or transformers.BitImageProcessor
  processor = cls(
    size={"shortest_edge": pre.resize},
    crop_size={"height": pre.crop, "width": pre.crop},
    resample=PILImageResampling.BICUBIC if pre.interpolation == "bicubic" else PILImageResampling.BILINEAR,
    image_mean=list(pre.mean),
    image_std=list(pre.std),
    do_convert_rgb=True,
  )
  theirs = processor(images=image, return_tensors="np")["pixel_values"][0]
  np.testing.assert_allclose(pre(image), theirs, atol=1e-6, rtol=0)


def test_clip_preprocessing_equals_transformers_clip_defaults():
  """``transformers``' CLIP processor at its defaults (OpenAI's constants, written there independently)."""
  from sklearn.datasets import load_sample_images

  from extract_torch.models import _CLIP

  image = load_sample_images().images[1][:400, :600]
  cls = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
  theirs = cls()(images=image, return_tensors="np")["pixel_values"][0]
  np.testing.assert_allclose(_CLIP(image), theirs, atol=1e-6, rtol=0)
