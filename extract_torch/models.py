"""Registry of feature extractors: each entry = builder + its own preprocessing + feature layer.

``build_model(name, weights=None)`` returns an ``Extractor``: ``preprocess`` maps one image
(PIL, or ``uint8 [h, w(, 3)]`` RGB) to the model's input array, ``forward`` maps a
stacked batch of those to ``float32 [b, dim]``, and calling the extractor on a ``uint8``
batch ``[b, h, w(, 3)]`` does both. ``weights`` is ``None`` (the authors' checkpoint,
downloaded once into torch hub's cache), a local checkpoint file, or ``"random"`` (the
architecture with random weights, for tests).

Besides the names in ``MODELS``, ``timm:NAME`` builds any timm model (``pip install timm``;
features = ``num_classes=0`` pooled output, preprocessing from its pretrained config).
"""

from __future__ import annotations

import os
from typing import Any, Callable, NamedTuple

import numpy as np

from extract_torch.preprocess import CLIP_MEAN, CLIP_STD, Preprocess
from extract_torch.pypi_models import LITE_SIZES, build_open_nsfw, efficientnet_lite

Image = Any  # PIL.Image.Image or uint8 array


class ModelSpec(NamedTuple):
  """One registered model.

  Attributes:
    dim: feature dimension.
    feature: which tensor is the feature, in words.
    preprocessing: the preprocessing its authors specify, in words.
    build: ``build(weights, image_size) -> (network, preprocess)``; ``network`` maps a
      float batch ``torch.Tensor`` to features (a torch module, or a callable for ONNX).
    url: where its weights are downloaded from (once, unless ``--weights FILE``), or None when a
      package ships them (it runs offline).
  """

  dim: int
  feature: str
  preprocessing: str
  build: Callable[[str | None, int | None], tuple[Any, Callable[[Image], np.ndarray]]]
  url: str | None = None


class Extractor:
  """A built model on a device. ``extractor(images_uint8) -> float32 [b, dim]``."""

  def __init__(
    self,
    name: str,
    dim: int,
    model: Any,
    preprocess: Callable[[Image], np.ndarray],
    device: str = "cpu",
    half: bool = False,
    info: dict | None = None,
  ):
    self.name, self.dim, self.preprocess = name, dim, preprocess
    self.model = model  # the torch module, or the ONNX Runtime callable
    self.device, self.half, self.info = device, half, dict(info or {})
    if device == "cpu":
      keep_freed_memory()

  def forward(self, batch) -> np.ndarray:
    """``batch``: stacked outputs of ``preprocess`` (numpy or torch). Returns ``float32 [b, dim]``."""
    import torch

    if not isinstance(self.model, torch.nn.Module):
      return np.asarray(self.model(np.asarray(batch)), dtype=np.float32)
    x = torch.as_tensor(batch).to(self.device, torch.float16 if self.half else torch.float32)
    with torch.inference_mode():
      return self.model(x).float().cpu().numpy()

  def __call__(self, images) -> np.ndarray:
    if isinstance(images, np.ndarray) and images.ndim not in (3, 4):
      raise ValueError(f"images: expected uint8 [b, h, w] or [b, h, w, 3], got {images.dtype} {images.shape}")
    return self.forward(np.stack([self.preprocess(im) for im in images]))


def keep_freed_memory() -> bool:
  """Makes glibc's ``malloc`` keep freed memory in the process instead of returning it to the OS.

  A CNN's batch allocates and frees activations of tens of MB per layer; above glibc's
  default thresholds each is a fresh ``mmap`` whose pages fault in again on every forward
  pass. Measured on 2 CPU cores (CIFAR-10 upscaled to 224 px, batch 64): EfficientNet-Lite0
  spent 5.1 s of system time for 2.4 s of user time and ran 15.9 images/s; with the
  thresholds raised, 70.9 images/s, and at batch 16 91.8 (``benchmarks/README.md``).
  Returns whether the setting took (False off glibc, or with ``EXTRACT_TORCH_SYSTEM_MALLOC=1``
  in the environment, which keeps glibc's defaults).
  """
  import ctypes

  if os.environ.get("EXTRACT_TORCH_SYSTEM_MALLOC") == "1":
    return False
  try:
    libc = ctypes.CDLL("libc.so.6")
  except OSError:
    return False
  M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
  return bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)) and bool(libc.mallopt(M_TRIM_THRESHOLD, (1 << 31) - 1))


def pick_device(device: str = "auto") -> str:
  """``auto`` -> ``cuda`` if available, else ``mps``, else ``cpu``."""
  import torch

  if device != "auto":
    return device
  if torch.cuda.is_available():
    return "cuda"
  if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
    return "mps"
  return "cpu"


# ---------------------------------------------------------------------------
# Networks from this package's architectures, with checkpoints from their authors
# ---------------------------------------------------------------------------


def _scaled(pre: Preprocess, image_size: int | None) -> Preprocess:
  if image_size is None or image_size == pre.crop:
    return pre
  return pre._replace(resize=int(round(image_size * pre.resize / pre.crop)), crop=image_size)


def _torch_entry(
  name: str,
  dim: int,
  feature: str,
  pre: Preprocess,
  network: Callable[[], Any],
  url: str,
  prefixes: tuple[str, ...] = (),
  drop: tuple[str, ...] = (),
  file_name: str | None = None,
) -> ModelSpec:
  def build(weights: str | None, image_size: int | None):
    from extract_torch.weights import download, load_into, read_state_dict, strip_prefix

    net = network()
    if weights != "random":
      path = weights if weights is not None else download(url, file_name)
      state = strip_prefix(read_state_dict(path), prefixes)
      state = {k: v for k, v in state.items() if not k.startswith(drop)} if drop else state
      load_into(net, state, path, name)
    return net.eval(), _scaled(pre, image_size)

  return ModelSpec(dim, feature, pre.describe(), build, url)


def _arch(cls: str, *args, **kwargs) -> Callable[[], Any]:
  """A builder of ``architectures.<cls>(*args, **kwargs)``; torch is imported only when it runs."""

  def make():
    from extract_torch import architectures

    return getattr(architectures, cls)(*args, **kwargs)

  return make


_IMAGENET = Preprocess(resize=256, crop=224)
_DINOV2 = Preprocess(resize=256, crop=224, interpolation="bicubic")
_CLIP = Preprocess(resize=224, crop=224, mean=CLIP_MEAN, std=CLIP_STD, interpolation="bicubic")
_TV = "https://download.pytorch.org/models/"
_DINO = "https://dl.fbaipublicfiles.com/dinov2/"
_OPENAI = "https://openaipublic.azureedge.net/clip/models/"
_LAION = "https://huggingface.co/laion/{}/resolve/main/open_clip_pytorch_model.bin"


MODELS: dict[str, ModelSpec] = {
  **{
    f"efficientnet_lite{v}": ModelSpec(
      dim=1280,
      feature="mean over space of extract_features (last conv block, before the classifier)",
      preprocessing=f"bilinear resize to image_size x image_size (default {px}, antialiased), RGB, (x - 127) / 128",
      build=efficientnet_lite(v),
    )
    for v, px in LITE_SIZES.items()
  },
  "open_nsfw": ModelSpec(
    dim=1024,
    feature="global average pool before the 2-class head",
    preprocessing="resize to 256x256 (bilinear), JPEG round trip, centre crop 224, BGR minus (104, 117, 123)",
    build=build_open_nsfw,
  ),
  "resnet50": _torch_entry(
    "resnet50",
    2048,
    "global average pool before fc (torchvision resnet50, IMAGENET1K_V1)",
    _IMAGENET,
    _arch("ResNet"),
    _TV + "resnet50-0676ba61.pth",
  ),
  "vgg16": _torch_entry(
    "vgg16",
    4096,
    "fc7: classifier[:5], the second 4096-d layer after its ReLU (torchvision vgg16)",
    _IMAGENET,
    _arch("VGG"),
    _TV + "vgg16-397923af.pth",
  ),
  "moco_v2_resnet50": _torch_entry(
    "moco_v2_resnet50",
    2048,
    "global average pool of the query encoder's ResNet-50 (projection head dropped)",
    _IMAGENET,
    _arch("ResNet", num_classes=None),
    "https://dl.fbaipublicfiles.com/moco/moco_checkpoints/moco_v2_800ep/moco_v2_800ep_pretrain.pth.tar",
    prefixes=("module.encoder_q.", "encoder_q.", "module.backbone.", "backbone.", "module."),
    drop=("fc.",),
  ),
  **{
    f"dinov2_{a}": _torch_entry(
      f"dinov2_{a}",
      d,
      "x_norm_clstoken: the final LayerNorm of the class token (the hub model's output)",
      _DINOV2,
      _arch("DinoVisionTransformer", a),
      f"{_DINO}dinov2_{a}/dinov2_{a}_pretrain.pth",
    )
    for a, d in (("vits14", 384), ("vitb14", 768), ("vitl14", 1024), ("vitg14", 1536))
  },
  **{
    f"clip_{tag}": _torch_entry(
      f"clip_{tag}",
      d,
      "CLIP image embedding (encode_image: ln_post(class token) @ proj), not normalised",
      _CLIP,
      _arch("ClipVisionTransformer", arch, quick_gelu=True),
      _OPENAI + url,
      prefixes=("visual.",),
    )
    for tag, arch, d, url in (
      ("vit_b32", "ViT-B/32", 512, "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt"),
      ("vit_b16", "ViT-B/16", 512, "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt"),
      ("vit_l14", "ViT-L/14", 768, "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt"),
    )
  },
  **{
    f"openclip_{tag}": _torch_entry(
      f"openclip_{tag}",
      d,
      "open_clip image embedding (encode_image, GELU towers), not normalised",
      _CLIP,
      _arch("ClipVisionTransformer", arch, quick_gelu=False),
      _LAION.format(repo),
      prefixes=("visual.",),
      file_name=f"openclip_{tag}.bin",
    )
    for tag, arch, d, repo in (
      ("vit_b32_laion2b", "ViT-B/32", 512, "CLIP-ViT-B-32-laion2B-s34B-b79K"),
      ("vit_l14_laion2b", "ViT-L/14", 768, "CLIP-ViT-L-14-laion2B-s32B-b82K"),
    )
  },
}


def _build_timm(model_name: str, weights: str | None, image_size: int | None):
  try:
    import timm
  except ImportError as e:
    raise ImportError(f"timm:{model_name} needs timm: pip install timm ({e})") from None
  kwargs: dict = {"num_classes": 0}
  if weights not in (None, "random"):
    if not os.path.exists(weights):
      raise FileNotFoundError(f"--weights: no such file {weights}")
    kwargs["pretrained_cfg_overlay"] = {"file": weights}
  net = timm.create_model(model_name, pretrained=weights != "random", **kwargs).eval()
  cfg = timm.data.resolve_data_config({}, model=net)
  crop = image_size or cfg["input_size"][-1]
  pre = Preprocess(
    resize=int(crop / cfg.get("crop_pct", 0.875)),
    crop=crop,
    mean=tuple(cfg["mean"]),
    std=tuple(cfg["std"]),
    interpolation=cfg.get("interpolation", "bicubic"),
  )
  return net, pre


def model_names() -> list[str]:
  return sorted(MODELS) + ["timm:NAME"]


def build_model(
  name: str, weights: str | None = None, image_size: int | None = None, device: str = "cpu", half: bool = False
) -> Extractor:
  """Builds the extractor ``name`` (a key of ``MODELS``, or ``timm:NAME``).

  Args:
    name: registry name.
    weights: ``None`` for the default checkpoint, a local file, or ``"random"``.
    image_size: input size in px (default: the authors' size).
    device: ``cpu``, ``cuda``, ``mps`` or ``auto``.
    half: run in float16 (GPU only).
  """
  device = pick_device(device)
  if half and device == "cpu":
    raise ValueError("--half needs a GPU (cuda or mps); on the CPU run in float32")
  if name.startswith("timm:"):
    network, pre = _build_timm(name[5:], weights, image_size)
    dim = network.num_features
    info = {"feature": "timm num_classes=0 output", "preprocessing": pre.describe()}
  elif name in MODELS:
    spec = MODELS[name]
    network, pre = spec.build(weights, image_size)
    dim = spec.dim
    info = {
      "feature": spec.feature,
      "preprocessing": pre.describe() if isinstance(pre, Preprocess) else spec.preprocessing,
    }
  else:
    raise ValueError(f"unknown model {name!r}; registered models: {model_names()}")
  import torch

  if isinstance(network, torch.nn.Module):
    network = network.to(device, torch.float16 if half else torch.float32)
  elif half:
    raise ValueError(f"--half: {name} runs in ONNX Runtime in float32")
  info.update(weights=weights or "default", image_size=image_size)
  return Extractor(name, dim, network, pre, device=device, half=half, info=info)


def extract_features(
  extractor: Extractor, images: np.ndarray, batch_size: int = 64, progress: bool = True, desc: str = ""
) -> np.ndarray:
  """Runs ``extractor`` over in-memory ``images`` in batches, in order; returns ``float32 [n, dim]``."""
  from tqdm.auto import tqdm

  chunks = []
  with tqdm(total=len(images), desc=desc, unit="img", disable=not progress) as bar:
    for start in range(0, len(images), batch_size):
      chunks.append(extractor(images[start : start + batch_size]))
      bar.update(len(chunks[-1]))
  return np.concatenate(chunks, axis=0)
