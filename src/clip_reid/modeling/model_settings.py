"""The `model` parameter block: which CLIP, at what input size, with which ReID options.

One object answers every question the stages ask about the model (pixel normalisation, the test
and training transforms, the ReID configuration), so no stage re-reads the raw parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

from torchvision.transforms import v2 as T

from clip_reid.data.transforms import build_test_transform, build_train_transform, normalization_for
from clip_reid.modeling.clip_factory import ClipSpec
from clip_reid.modeling.image_tower import CLIP_TOWER, tower_normalization
from clip_reid.modeling.reid_model import NECK_FEATS, ReidConfig
from clip_reid.settings_base import Settings, setting


@dataclass(frozen=True)
class AugmentationSettings(Settings):
    """Stage-2 training augmentation (the official recipe's values)."""

    flip_prob: float = setting(0.5, ge=0.0, le=1.0)
    padding: int = setting(10, ge=0)
    erasing_prob: float = setting(0.5, ge=0.0, le=1.0)


@dataclass(frozen=True)
class ModelSettings(Settings):
    """The backbone and its ReID adaptation, shared by both stages, evaluation and inference."""

    clip: ClipSpec = setting(default_factory=ClipSpec)
    image_size: tuple[int, int] = setting((256, 128), ge=1)  # height, width
    stride: int = setting(16, ge=1)  # ViT patch stride; 12 = overlapping patches
    use_sie: bool = False  # ViT camera embedding
    sie_coef: float = setting(3.0, ge=0.0)
    neck_feat: str = setting("before", choices=NECK_FEATS)
    pixel_mean: tuple[float, float, float] | None = None  # None = the backbone's reference
    pixel_std: tuple[float, float, float] | None = setting(None, gt=0.0)

    def __post_init__(self) -> None:
        if (self.pixel_mean is None) != (self.pixel_std is None):
            raise ValueError("set both pixel_mean and pixel_std, or neither.")

    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Pixel mean/std: explicit in the parameters, or the image tower's reference values
        (a CNN tower's: those its ImageNet weights were trained with)."""
        if self.pixel_mean is not None and self.pixel_std is not None:
            return self.pixel_mean, self.pixel_std
        if self.clip.image_tower != CLIP_TOWER:
            return tower_normalization(self.clip.image_tower)
        return normalization_for(self.clip.arch)

    def eval_transform(self) -> T.Compose:
        return build_test_transform(self.image_size, *self.normalization())

    def train_transform(self, augmentation: AugmentationSettings) -> T.Compose:
        mean, std = self.normalization()
        return build_train_transform(self.image_size, mean, std, augmentation.flip_prob,
                                     augmentation.padding, augmentation.erasing_prob)

    def reid_config(self, num_classes: int, num_cameras: int) -> ReidConfig:
        """The image model's configuration; SIE gets one embedding per training camera."""
        return ReidConfig(clip=self.clip, num_classes=num_classes, image_size=self.image_size,
                          stride=self.stride, num_cameras=num_cameras if self.use_sie else 0,
                          sie_coef=self.sie_coef, neck_feat=self.neck_feat)
