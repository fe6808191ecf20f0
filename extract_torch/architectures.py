"""The networks of the registry, in plain PyTorch, with their authors' parameter names.

Each class reproduces the module tree of the official implementation closely enough that
the official checkpoint loads with ``load_state_dict(strict=True)``:

- ``ResNet`` (bottleneck, v1.5: stride in the 3x3 conv) and ``VGG``: torchvision's
  ``resnet50`` and ``vgg16`` (keys ``conv1.weight``, ``layer1.0.conv1.weight``, ...,
  ``features.0.weight``, ``classifier.6.weight``). MoCo v2 uses the same ResNet-50.
- ``DinoVisionTransformer``: ``facebookresearch/dinov2`` as built by its torch hub
  entries (``img_size=518``, ``patch_size=14``, layer scale, ``block_chunks=0``;
  SwiGLU FFN for ViT-g).
- ``ClipVisionTransformer``: the image tower of OpenAI CLIP (``visual.*`` keys of
  ``clip.load``, also used by open_clip's ViT models).

Only what feature extraction needs is here: no dropout, no stochastic depth, no heads
that are not used.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------------------
# torchvision ResNet-50 (He et al. 2016; torchvision's v1.5 layout)
# ---------------------------------------------------------------------------


class Bottleneck(nn.Module):
  expansion = 4

  def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
    super().__init__()
    self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(planes)
    self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
    self.bn2 = nn.BatchNorm2d(planes)
    self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
    self.bn3 = nn.BatchNorm2d(planes * self.expansion)
    self.relu = nn.ReLU(inplace=True)
    self.downsample = downsample

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu(self.bn2(self.conv2(out)))
    out = self.bn3(self.conv3(out))
    return self.relu(out + identity)


class ResNet(nn.Module):
  """Bottleneck ResNet; ``forward`` returns the global-average-pooled features ``[b, 2048]``."""

  def __init__(self, layers: tuple[int, ...] = (3, 4, 6, 3), num_classes: int | None = 1000):
    super().__init__()
    self.inplanes = 64
    self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
    self.bn1 = nn.BatchNorm2d(64)
    self.relu = nn.ReLU(inplace=True)
    self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
    self.layer1 = self._make_layer(64, layers[0])
    self.layer2 = self._make_layer(128, layers[1], stride=2)
    self.layer3 = self._make_layer(256, layers[2], stride=2)
    self.layer4 = self._make_layer(512, layers[3], stride=2)
    self.num_features = 512 * Bottleneck.expansion
    # The ImageNet classifier, kept so that torchvision's checkpoint loads strictly.
    self.fc = nn.Linear(self.num_features, num_classes) if num_classes else None
    for m in self.modules():  # torchvision's init
      if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

  def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
    downsample = None
    if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
      downsample = nn.Sequential(
        nn.Conv2d(self.inplanes, planes * Bottleneck.expansion, 1, stride=stride, bias=False),
        nn.BatchNorm2d(planes * Bottleneck.expansion),
      )
    layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
    self.inplanes = planes * Bottleneck.expansion
    layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
    x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
    return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


# ---------------------------------------------------------------------------
# torchvision VGG-16 (Simonyan & Zisserman 2015), configuration "D", no batch norm
# ---------------------------------------------------------------------------

_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG(nn.Module):
  """VGG-16; ``forward`` returns the second fully connected layer after its ReLU ("fc7", ``[b, 4096]``)."""

  def __init__(self, cfg: tuple = _VGG16, num_classes: int = 1000):
    super().__init__()
    layers: list[nn.Module] = []
    channels = 3
    for v in cfg:
      if v == "M":
        layers.append(nn.MaxPool2d(2, stride=2))
      else:
        layers += [nn.Conv2d(channels, v, 3, padding=1), nn.ReLU(inplace=True)]
        channels = v
    self.features = nn.Sequential(*layers)
    self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
    self.classifier = nn.Sequential(  # indices as torchvision's (dropout at 2 and 5)
      nn.Linear(512 * 7 * 7, 4096),
      nn.ReLU(True),
      nn.Dropout(),
      nn.Linear(4096, 4096),
      nn.ReLU(True),
      nn.Dropout(),
      nn.Linear(4096, num_classes),
    )
    self.num_features = 4096

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = torch.flatten(self.avgpool(self.features(x)), 1)
    return self.classifier[:5](x)  # up to the ReLU after fc7; dropout is the identity in eval


# ---------------------------------------------------------------------------
# DINOv2 ViT (Oquab et al. 2023), as built by facebookresearch/dinov2's hub entries
# ---------------------------------------------------------------------------


class PatchEmbed(nn.Module):
  def __init__(self, patch_size: int, embed_dim: int):
    super().__init__()
    self.proj = nn.Conv2d(3, embed_dim, patch_size, stride=patch_size)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.proj(x).flatten(2).transpose(1, 2)  # [b, n_patches, dim]


class Attention(nn.Module):
  def __init__(self, dim: int, num_heads: int):
    super().__init__()
    self.num_heads = num_heads
    self.qkv = nn.Linear(dim, dim * 3)
    self.proj = nn.Linear(dim, dim)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    b, n, c = x.shape
    q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
    x = F.scaled_dot_product_attention(q, k, v)
    return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
  def __init__(self, dim: int, hidden: int):
    super().__init__()
    self.fc1 = nn.Linear(dim, hidden)
    self.act = nn.GELU()
    self.fc2 = nn.Linear(hidden, dim)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.fc2(self.act(self.fc1(x)))


class SwiGLUFFNFused(nn.Module):
  """DINOv2's SwiGLU FFN (ViT-g): hidden width ``8 * ceil(2/3 * hidden / 8)``."""

  def __init__(self, dim: int, hidden: int):
    super().__init__()
    hidden = (int(hidden * 2 / 3) + 7) // 8 * 8
    self.w12 = nn.Linear(dim, 2 * hidden)
    self.w3 = nn.Linear(hidden, dim)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x1, x2 = self.w12(x).chunk(2, dim=-1)
    return self.w3(F.silu(x1) * x2)


class LayerScale(nn.Module):
  def __init__(self, dim: int, init_values: float = 1.0):
    super().__init__()
    self.gamma = nn.Parameter(init_values * torch.ones(dim))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return x * self.gamma


class DinoBlock(nn.Module):
  def __init__(self, dim: int, num_heads: int, ffn: type[nn.Module]):
    super().__init__()
    self.norm1 = nn.LayerNorm(dim, eps=1e-6)
    self.attn = Attention(dim, num_heads)
    self.ls1 = LayerScale(dim)
    self.norm2 = nn.LayerNorm(dim, eps=1e-6)
    self.mlp = ffn(dim, 4 * dim)
    self.ls2 = LayerScale(dim)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = x + self.ls1(self.attn(self.norm1(x)))
    return x + self.ls2(self.mlp(self.norm2(x)))


DINOV2_ARCHS = {  # name: (embed_dim, depth, num_heads, ffn)
  "vits14": (384, 12, 6, Mlp),
  "vitb14": (768, 12, 12, Mlp),
  "vitl14": (1024, 24, 16, Mlp),
  "vitg14": (1536, 40, 24, SwiGLUFFNFused),
}


class DinoVisionTransformer(nn.Module):
  """``forward`` returns the normalised class token ``x_norm_clstoken`` ``[b, embed_dim]``."""

  def __init__(self, arch: str, img_size: int = 518, patch_size: int = 14):
    super().__init__()
    dim, depth, heads, ffn = DINOV2_ARCHS[arch]
    self.patch_size = patch_size
    self.num_features = dim
    self.patch_embed = PatchEmbed(patch_size, dim)
    n_patches = (img_size // patch_size) ** 2
    self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
    self.pos_embed = nn.Parameter(torch.zeros(1, n_patches + 1, dim))
    self.blocks = nn.ModuleList(DinoBlock(dim, heads, ffn) for _ in range(depth))
    self.norm = nn.LayerNorm(dim, eps=1e-6)
    self.mask_token = nn.Parameter(torch.zeros(1, dim))  # only used in training; kept for the checkpoint
    if not self.pos_embed.is_meta:  # the authors' init (random-weight builds)
      nn.init.trunc_normal_(self.pos_embed, std=0.02)
      nn.init.normal_(self.cls_token, std=1e-6)
      for m in self.modules():
        if isinstance(m, nn.Linear):
          nn.init.trunc_normal_(m.weight, std=0.02)
          nn.init.zeros_(m.bias)

  def interpolate_pos_encoding(self, h: int, w: int) -> torch.Tensor:
    """The hub models' interpolation: bicubic, scale factor with the historical +0.1 offset."""
    n = self.pos_embed.shape[1] - 1
    h0, w0 = h // self.patch_size, w // self.patch_size
    m = int(math.sqrt(n))
    if h0 * w0 == n and h0 == w0:
      return self.pos_embed
    pos = self.pos_embed.float()
    patch_pos = F.interpolate(
      pos[:, 1:].reshape(1, m, m, -1).permute(0, 3, 1, 2), scale_factor=((h0 + 0.1) / m, (w0 + 0.1) / m), mode="bicubic"
    )
    patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, h0 * w0, -1)
    return torch.cat([pos[:, :1], patch_pos], dim=1).to(self.pos_embed.dtype)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    b, _, h, w = x.shape
    x = self.patch_embed(x)
    x = torch.cat([self.cls_token.expand(b, -1, -1), x], dim=1)
    x = x + self.interpolate_pos_encoding(h, w)
    for blk in self.blocks:
      x = blk(x)
    return self.norm(x)[:, 0]


# ---------------------------------------------------------------------------
# CLIP image tower (Radford et al. 2021), OpenAI's ``VisionTransformer``
# ---------------------------------------------------------------------------


class QuickGELU(nn.Module):
  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


class ClipLayerNorm(nn.LayerNorm):
  """CLIP's LayerNorm: computed in float32 whatever the input dtype."""

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return super().forward(x.float()).to(x.dtype)


class ResidualAttentionBlock(nn.Module):
  def __init__(self, width: int, heads: int, act: type[nn.Module]):
    super().__init__()
    self.attn = nn.MultiheadAttention(width, heads)
    self.ln_1 = ClipLayerNorm(width)
    self.mlp = nn.Sequential()
    self.mlp.add_module("c_fc", nn.Linear(width, 4 * width))
    self.mlp.add_module("gelu", act())
    self.mlp.add_module("c_proj", nn.Linear(4 * width, width))
    self.ln_2 = ClipLayerNorm(width)

  def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [seq, b, width]
    y = self.ln_1(x)
    x = x + self.attn(y, y, y, need_weights=False)[0]
    return x + self.mlp(self.ln_2(x))


class ClipTransformer(nn.Module):
  def __init__(self, width: int, layers: int, heads: int, act: type[nn.Module]):
    super().__init__()
    self.resblocks = nn.Sequential(*(ResidualAttentionBlock(width, heads, act) for _ in range(layers)))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.resblocks(x)


CLIP_ARCHS = {  # name: (patch_size, width, layers, heads, output_dim), all at 224 px
  "ViT-B/32": (32, 768, 12, 12, 512),
  "ViT-B/16": (16, 768, 12, 12, 512),
  "ViT-L/14": (14, 1024, 24, 16, 768),
}


class ClipVisionTransformer(nn.Module):
  """``forward`` returns CLIP's image embedding (``encode_image``: ``ln_post(cls) @ proj``)."""

  def __init__(self, arch: str, quick_gelu: bool = True, input_resolution: int = 224):
    super().__init__()
    patch, width, layers, heads, out_dim = CLIP_ARCHS[arch]
    scale = width**-0.5
    self.num_features = out_dim
    self.conv1 = nn.Conv2d(3, width, patch, stride=patch, bias=False)
    self.class_embedding = nn.Parameter(scale * torch.randn(width))
    self.positional_embedding = nn.Parameter(scale * torch.randn((input_resolution // patch) ** 2 + 1, width))
    self.ln_pre = ClipLayerNorm(width)
    self.transformer = ClipTransformer(width, layers, heads, QuickGELU if quick_gelu else nn.GELU)
    self.ln_post = ClipLayerNorm(width)
    self.proj = nn.Parameter(scale * torch.randn(width, out_dim))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = self.conv1(x).flatten(2).transpose(1, 2)  # [b, grid**2, width]
    cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
    x = self.ln_pre(x).permute(1, 0, 2)  # [seq, b, width]
    x = self.transformer(x).permute(1, 0, 2)
    return self.ln_post(x[:, 0]) @ self.proj
