"""Image transforms of CLIP-ReID: PIL crop in, normalised float tensor [3, H, W] out.

Training follows the official recipe: bicubic resize → horizontal flip → pad → random crop →
normalise → random erasing. Evaluation and the stage-1 feature cache resize with torchvision's
default bilinear interpolation, as the official ``val_transforms``
(datasets/make_dataloader_clipreid.py: ``T.Resize(cfg.INPUT.SIZE_TEST)``) do; on PIL crops both
are PIL's own antialiased resize. CLIP-ReID erases with timm's ``RandomErasing(mode="pixel")``,
which fills the box with per-pixel standard-normal noise in normalised space; torchvision's
``RandomErasing(value="random")`` does the same (same area 2–33 %, log-uniform aspect 0.3–3.3,
up to 10 attempts), so timm is not needed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF_MEAN = (0.5, 0.5, 0.5)
HALF_STD = (0.5, 0.5, 0.5)

_RESNET_TOKEN = re.compile(r"^(rn|resnet)\d*(x\d+)?$")
_VIT_TOKEN = re.compile(r"^vit")


def normalization_for(arch: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) used by CLIP-ReID for a backbone: ImageNet for ResNets, 0.5/0.5 for ViTs.

    The tower type is read from the name (``RN50``, ``tiny-rn`` → ResNet; ``ViT-B-16``,
    ``tiny-vit`` → ViT), so a new size of either family needs no change here.
    """
    tokens = [token for token in re.split(r"[-_/\s]+", arch.lower()) if token]
    if any(_VIT_TOKEN.match(token) for token in tokens):
        return HALF_MEAN, HALF_STD
    if any(_RESNET_TOKEN.match(token) for token in tokens):
        return IMAGENET_MEAN, IMAGENET_STD
    raise ValueError(
        f"Cannot tell whether backbone {arch!r} is a ResNet or a ViT: name it with an 'RN…' or "
        f"'ViT…' part (e.g. 'RN50', 'ViT-B-16', 'tiny-rn', 'tiny-vit') or pass mean/std explicitly."
    )


def build_train_transform(
    size: Sequence[int],
    mean: Sequence[float],
    std: Sequence[float],
    flip_prob: float,
    padding: int,
    erasing_prob: float,
) -> T.Compose:
    """Stage-2 training augmentation; ``size`` is (height, width). The values come from the
    `model` block and encoder_training.augmentation (ModelSettings.train_transform)."""
    height, width = _checked_size(size)
    _check_normalisation(mean, std)
    _check_probability("flip_prob", flip_prob)
    _check_probability("erasing_prob", erasing_prob)
    if padding < 0:
        raise ValueError(f"padding must be >= 0 pixels, got {padding}.")
    return T.Compose(
        [
            T.Resize((height, width), interpolation=InterpolationMode.BICUBIC),
            T.RandomHorizontalFlip(p=flip_prob),
            T.Pad(padding, fill=0, padding_mode="constant"),
            T.RandomCrop((height, width)),
            *_to_normalised_tensor(mean, std),
            T.RandomErasing(p=erasing_prob, value="random"),
            T.ToPureTensor(),
        ]
    )


def build_test_transform(
    size: Sequence[int], mean: Sequence[float], std: Sequence[float]
) -> T.Compose:
    """Deterministic evaluation (and stage-1 feature) transform: bilinear resize, normalise.

    Bilinear, not the training transform's bicubic, because the official evaluation and stage-1
    features use ``T.Resize``'s default (the two differ by 0.016 per normalised value on average
    on the demo's 64×128 crops resized to 256×128).
    """
    return T.Compose([build_test_resize(size), build_normaliser(mean, std)])


def build_test_resize(size: Sequence[int]) -> T.Compose:
    """The first half of ``build_test_transform``: PIL crop → resized uint8 tensor [3, H, W].
    Ray's decoding stage ships this (a quarter of the float32 bytes) to the model actors."""
    height, width = _checked_size(size)
    return T.Compose(
        [T.Resize((height, width), interpolation=InterpolationMode.BILINEAR), T.ToImage()]
    )


def build_normaliser(mean: Sequence[float], std: Sequence[float]) -> T.Compose:
    """The second half of ``build_test_transform``: uint8 image(s) → normalised float32, for one
    image [3, H, W] or a batch [N, 3, H, W]."""
    _check_normalisation(mean, std)
    return T.Compose([*_scaled_and_normalised(mean, std), T.ToPureTensor()])


def _to_normalised_tensor(mean: Sequence[float], std: Sequence[float]) -> list[T.Transform]:
    return [T.ToImage(), *_scaled_and_normalised(mean, std)]


def _scaled_and_normalised(mean: Sequence[float], std: Sequence[float]) -> list[T.Transform]:
    return [T.ToDtype(torch.float32, scale=True), T.Normalize(mean=list(mean), std=list(std))]


def _checked_size(size: Sequence[int]) -> tuple[int, int]:
    if len(size) != 2 or any(int(side) != side or side <= 0 for side in size):
        raise ValueError(f"size must be (height, width) in positive pixels, got {size!r}.")
    return int(size[0]), int(size[1])


def _check_normalisation(mean: Sequence[float], std: Sequence[float]) -> None:
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"mean and std need one value per RGB channel, got {mean!r} and {std!r}.")
    if any(value <= 0 for value in std):
        raise ValueError(f"std values must be positive, got {std!r}.")


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value}.")
