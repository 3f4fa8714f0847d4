"""CLIP image towers adapted for ReID crops, returning three features per image.

ResNet towers (CLIP's ModifiedResNet): layer4 stride 1, attention-pool positional embedding
resized to the new grid. ViT towers: patch stride 16 or less (overlapping patches), positional
embedding resized to the new grid, optional camera embedding (SIE) on the class token. CNN towers
(:class:`CnnImageTower`, an ImageNet CNN in place of CLIP's) are size-agnostic: used as built.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transformer import VisionTransformer
from torch import Tensor, nn

from clip_reid.modeling.image_tower import CnnImageTower


class ImageFeatures(NamedTuple):
    """RN50: GAP(layer3) 1024, GAP(layer4) 2048, attention pool 1024.
    ViT-B/16: block-11 CLS 768, final CLS 768, projection 512.
    CNN tower: GAP(last block), GAP(head) (e.g. 352 and 1280 for EfficientNet-Lite2), projection."""

    intermediate: Tensor
    final: Tensor
    projection: Tensor


def resize_grid_embedding(embedding: Tensor, grid: tuple[int, int]) -> Tensor:
    """Bilinearly resize a [1 + g*g, C] positional embedding to [1 + h*w, C]; keep the class row."""
    class_row, cells = embedding[:1], embedding[1:]
    side = math.isqrt(cells.shape[0])
    if side * side != cells.shape[0]:
        raise ValueError(f"Positional embedding grid of {cells.shape[0]} cells is not square.")
    square = cells.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    resized = F.interpolate(square, size=grid, mode="bilinear", align_corners=False)
    return torch.cat([class_row, resized.permute(0, 2, 3, 1).reshape(grid[0] * grid[1], -1)])


class ReidImageEncoder(nn.Module):
    """Wraps an open_clip visual tower (ModifiedResNet or standard VisionTransformer)."""

    def __init__(
        self,
        visual: nn.Module,
        image_size: tuple[int, int],
        stride: int,
        num_cameras: int,
        sie_coef: float,
    ) -> None:
        """The `model` block's values (ModelSettings / ReidConfig), no defaults of its own;
        ``num_cameras`` 0 goes without the camera embedding (``sie_coef`` unused then)."""
        super().__init__()
        self.visual = visual
        self.image_size = tuple(image_size)
        self.sie_coef = sie_coef
        if isinstance(visual, ModifiedResNet):
            self.kind = "resnet"
            self.grid = self._adapt_resnet(visual)
            self.dims = (visual.layer3[-1].bn3.num_features, visual.layer4[-1].bn3.num_features,
                         visual.attnpool.c_proj.out_features)
        elif isinstance(visual, VisionTransformer):
            self.kind = "vit"
            self.grid = self._adapt_vit(visual, stride)
            width = visual.class_embedding.shape[0]
            self.dims = (width, width, visual.proj.shape[1])
        elif isinstance(visual, CnnImageTower):
            self.kind = "cnn"
            self.grid = None
            self.dims = (visual.intermediate_dim, visual.num_features, visual.output_dim)
        else:
            raise TypeError(
                f"Unsupported CLIP image tower {type(visual).__name__}: ReID adaptation supports "
                "open_clip ModifiedResNet (RN50, RN101, RN50x4, …), VisionTransformer with "
                "class-token pooling (ViT-B-16, ViT-B-32, ViT-L-14, …) and CnnImageTower."
            )
        self.camera_embedding = None
        if num_cameras > 0:
            if self.kind != "vit":
                raise ValueError("The camera embedding (SIE) applies to ViT backbones only.")
            self.camera_embedding = nn.Parameter(torch.zeros(num_cameras, self.dims[0]))
            nn.init.trunc_normal_(self.camera_embedding, std=0.02)

    def _adapt_resnet(self, visual: ModifiedResNet) -> tuple[int, int]:
        first = visual.layer4[0]
        first.avgpool = nn.Identity()  # stride 1: keep the 16×8 map at 256×128
        if first.downsample is not None:
            first.downsample._modules["-1"] = nn.Identity()
        grid = (self.image_size[0] // 16, self.image_size[1] // 16)
        pool = visual.attnpool
        pool.positional_embedding = nn.Parameter(
            resize_grid_embedding(pool.positional_embedding.data, grid)
        )
        return grid

    def _adapt_vit(self, visual: VisionTransformer, stride: int) -> tuple[int, int]:
        if getattr(visual, "attn_pool", None) is not None or visual.pool_type != "tok":
            raise TypeError("Only ViTs pooled by their class token can be adapted for ReID.")
        patch = visual.conv1.kernel_size
        visual.conv1.stride = (stride, stride)
        grid = ((self.image_size[0] - patch[0]) // stride + 1,
                (self.image_size[1] - patch[1]) // stride + 1)
        visual.positional_embedding = nn.Parameter(
            resize_grid_embedding(visual.positional_embedding.data, grid)
        )
        return grid

    @property
    def feature_dims(self) -> tuple[int, int, int]:
        return self.dims

    def is_pretrained_parameter(self, name: str) -> bool:
        """Whether parameter ``name`` (of this module) belongs to the image tower as it came,
        which fine-tuning may move more slowly than the layers added for ReID (a CNN tower's
        projection, the camera embedding)."""
        return name.startswith("visual.trunk." if self.kind == "cnn" else "visual.")

    def forward(self, images: Tensor, camids: Tensor | None = None) -> ImageFeatures:
        if self.kind == "resnet":
            return self._forward_resnet(images)
        if self.kind == "cnn":
            intermediate, final = self.visual.pooled(images)
            return ImageFeatures(intermediate, final, self.visual.proj(final))
        return self._forward_vit(images, camids)

    def _forward_resnet(self, images: Tensor) -> ImageFeatures:
        v = self.visual
        x = v.stem(images.to(v.conv1.weight.dtype))
        x = v.layer2(v.layer1(x))
        x3 = v.layer3(x)
        x4 = v.layer4(x3)
        return ImageFeatures(x3.mean(dim=(2, 3)), x4.mean(dim=(2, 3)), v.attnpool(x4))

    def _forward_vit(self, images: Tensor, camids: Tensor | None) -> ImageFeatures:
        v = self.visual
        x = v.conv1(images.to(v.conv1.weight.dtype)).flatten(2).transpose(1, 2)
        cls = v.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        if self.camera_embedding is not None:
            if camids is None:
                raise ValueError("This model uses camera embeddings (SIE): pass camids.")
            cls = cls + self.sie_coef * self.camera_embedding[camids].unsqueeze(1)
        x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)
        x = v.ln_pre(x)
        blocks = v.transformer.resblocks
        batch_first = getattr(v.transformer, "batch_first", True)
        if not batch_first:
            x = x.transpose(0, 1)
        for block in blocks[:-1]:
            x = block(x)
        penultimate = x
        x = blocks[-1](x)
        if not batch_first:
            penultimate, x = penultimate.transpose(0, 1), x.transpose(0, 1)
        final = v.ln_post(x[:, 0])
        return ImageFeatures(penultimate[:, 0], final, final @ v.proj)
