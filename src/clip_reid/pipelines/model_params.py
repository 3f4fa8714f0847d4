"""Turn the shared `model` and `trainer` parameters into library objects (one place, all stages)."""

from __future__ import annotations

from typing import Any

from clip_reid.data.transforms import build_test_transform, build_train_transform, normalization_for
from clip_reid.modeling import ClipSpec, ReidConfig
from clip_reid.modeling.trainer import TrainerSettings


def clip_spec(model: dict[str, Any]) -> ClipSpec:
    """The CLIP backbone and its weight source."""
    return ClipSpec(**model["clip"])


def normalization(model: dict[str, Any]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Pixel mean/std: explicit in the parameters, or the backbone's reference values."""
    if model.get("pixel_mean") and model.get("pixel_std"):
        return tuple(model["pixel_mean"]), tuple(model["pixel_std"])
    return normalization_for(model["clip"]["arch"])


def eval_transform(model: dict[str, Any]):
    mean, std = normalization(model)
    return build_test_transform(model["image_size"], mean, std)


def train_transform(model: dict[str, Any], augmentation: dict[str, Any]):
    mean, std = normalization(model)
    return build_train_transform(model["image_size"], mean, std, **augmentation)


def reid_config(model: dict[str, Any], num_classes: int, num_cameras: int) -> ReidConfig:
    """The image model's configuration; SIE gets one embedding per training camera."""
    return ReidConfig(
        clip=clip_spec(model),
        num_classes=num_classes,
        image_size=tuple(model["image_size"]),
        stride=model.get("stride", 16),
        num_cameras=num_cameras if model.get("use_sie", False) else 0,
        sie_coef=model.get("sie_coef", 3.0),
        neck_feat=model.get("neck_feat", "before"),
    )


def trainer_settings(trainer: dict[str, Any], max_epochs: int) -> TrainerSettings:
    return TrainerSettings.from_params({**trainer, "max_epochs": max_epochs})
