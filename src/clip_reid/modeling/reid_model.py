"""The CLIP-ReID image model: adapted CLIP image tower, BN necks and identity classifiers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from clip_reid.modeling.clip_factory import ClipSpec
from clip_reid.modeling.reid_backbone import ReidImageEncoder

NECK_FEATS = ("before", "after")


@dataclass(frozen=True)
class ReidConfig:
    """Everything needed to rebuild a ClipReidModel (stored in its checkpoint). No defaults:
    ModelSettings.reid_config fills it from the `model` block, so a value has one source."""

    clip: ClipSpec
    num_classes: int
    image_size: tuple[int, int]
    stride: int
    num_cameras: int  # > 0 enables the camera embedding (SIE, ViT only)
    sie_coef: float
    neck_feat: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_size", tuple(self.image_size))
        if self.neck_feat not in NECK_FEATS:
            raise ValueError(f"neck_feat must be one of {NECK_FEATS}, got {self.neck_feat!r}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReidConfig:
        missing = sorted({f.name for f in fields(cls)} - set(data))
        if missing:
            raise ValueError(f"The checkpoint's model config lacks {', '.join(missing)}: it was "
                             "not written by this version of clip-reid; retrain the model.")
        return cls(**{**data, "clip": ClipSpec(**data["clip"])})


class ReidTrainOutput(NamedTuple):
    """What the stage-2 losses need from one forward pass."""

    logits: tuple[Tensor, Tensor]
    features: tuple[Tensor, Tensor, Tensor]
    image_projection: Tensor


def _bn_neck(dim: int) -> nn.BatchNorm1d:
    neck = nn.BatchNorm1d(dim)
    neck.bias.requires_grad_(False)  # BNNeck: a bias-free neck, as in the reference
    return neck


def _classifier(dim: int, num_classes: int) -> nn.Linear:
    head = nn.Linear(dim, num_classes, bias=False)
    nn.init.normal_(head.weight, std=0.001)
    return head


class ClipReidModel(nn.Module):
    """Training: logits, triplet features and the image projection. Eval: the test feature."""

    def __init__(self, config: ReidConfig, clip_model: nn.Module) -> None:
        super().__init__()
        self.config = config
        self.image_encoder = ReidImageEncoder(
            clip_model.visual, config.image_size, config.stride, config.num_cameras,
            config.sie_coef,
        )
        _, final_dim, proj_dim = self.image_encoder.feature_dims
        self.bottleneck = _bn_neck(final_dim)
        self.bottleneck_proj = _bn_neck(proj_dim)
        self.classifier = _classifier(final_dim, config.num_classes)
        self.classifier_proj = _classifier(proj_dim, config.num_classes)

    @property
    def feature_dim(self) -> int:
        """Size of the test feature: concat(final, projection)."""
        _, final_dim, proj_dim = self.image_encoder.feature_dims
        return final_dim + proj_dim

    def forward(self, images: Tensor, camids: Tensor | None = None):
        features = self.image_encoder(images, camids)
        if not self.training:
            if self.config.neck_feat == "after":
                return torch.cat(
                    [self.bottleneck(features.final), self.bottleneck_proj(features.projection)], 1
                )
            return torch.cat([features.final, features.projection], dim=1)
        logits = (
            self.classifier(self.bottleneck(features.final)),
            self.classifier_proj(self.bottleneck_proj(features.projection)),
        )
        return ReidTrainOutput(logits, tuple(features), features.projection)
