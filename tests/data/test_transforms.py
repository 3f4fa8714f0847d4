"""Transforms: shapes, normalisation choice, and each augmentation applied exactly as configured."""

import numpy as np
import pytest
import torch
from PIL import Image

from clip_reid.data.transforms import (
    HALF_MEAN,
    HALF_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_normaliser,
    build_test_resize,
    build_test_transform,
    build_train_transform,
    normalization_for,
)

SIZE = (32, 16)
VALID = dict(size=SIZE, mean=IMAGENET_MEAN, std=IMAGENET_STD, flip_prob=0.5, padding=10,
             erasing_prob=0.5)


@pytest.fixture
def crop() -> Image.Image:
    pixels = np.random.default_rng(0).integers(0, 256, size=(80, 40, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def plain_train(**overrides):
    """A train transform with every augmentation off unless switched on by ``overrides``."""
    settings = dict(flip_prob=0.0, padding=0, erasing_prob=0.0) | overrides
    return build_train_transform(SIZE, IMAGENET_MEAN, IMAGENET_STD, **settings)


def test_outputs_are_float_tensors_of_the_requested_size(crop):
    for transform in (
        build_train_transform(SIZE, IMAGENET_MEAN, IMAGENET_STD, 0.5, 10, 0.5),
        build_test_transform(SIZE, IMAGENET_MEAN, IMAGENET_STD),
    ):
        output = transform(crop)
        assert type(output) is torch.Tensor
        assert output.shape == (3, *SIZE)
        assert output.dtype == torch.float32


def pil_reference(crop: Image.Image, resample: Image.Resampling, mean, std) -> torch.Tensor:
    """PIL resize then normalise, computed independently of torchvision."""
    resized = np.asarray(crop.resize(SIZE[::-1], resample), dtype=np.float32) / 255
    expected = (resized - np.array(mean)) / np.array(std)
    return torch.from_numpy(expected).permute(2, 0, 1).float()


def bicubic_reference(crop: Image.Image) -> torch.Tensor:
    """What the training transform yields with every augmentation off."""
    return pil_reference(crop, Image.Resampling.BICUBIC, IMAGENET_MEAN, IMAGENET_STD)


def test_test_transform_resizes_bilinear_as_the_official_val_transforms(crop):
    # official datasets/make_dataloader_clipreid.py: val_transforms = T.Resize(SIZE_TEST) (default
    # bilinear) → ToTensor → Normalize; used for the test set and the stage-1 feature cache
    output = build_test_transform(SIZE, HALF_MEAN, HALF_STD)(crop)
    torch.testing.assert_close(
        output, pil_reference(crop, Image.Resampling.BILINEAR, HALF_MEAN, HALF_STD)
    )
    bicubic = pil_reference(crop, Image.Resampling.BICUBIC, HALF_MEAN, HALF_STD)
    assert (output - bicubic).abs().mean() > 0.01  # the interpolation is really pinned


def test_train_transform_resizes_bicubic(crop):
    # official train_transforms: T.Resize(SIZE_TRAIN, interpolation=3), 3 = PIL bicubic
    for seed in range(3):
        torch.manual_seed(seed)
        output = plain_train()(crop)
        torch.testing.assert_close(output, bicubic_reference(crop))
        bilinear = pil_reference(crop, Image.Resampling.BILINEAR, IMAGENET_MEAN, IMAGENET_STD)
        assert (output - bilinear).abs().mean() > 0.01


def test_resize_then_normaliser_is_the_test_transform_one_image_or_a_batch(crop):
    # Ray's decoding stage ships build_test_resize's uint8 pixels; its actors normalise batches
    resized = build_test_resize(SIZE)(crop)
    assert resized.dtype == torch.uint8 and resized.shape == (3, *SIZE)
    normalise = build_normaliser(IMAGENET_MEAN, IMAGENET_STD)
    whole = build_test_transform(SIZE, IMAGENET_MEAN, IMAGENET_STD)(crop)
    assert torch.equal(normalise(resized), whole)
    batch = normalise(torch.stack([resized, resized.flip(-1)]))
    assert type(batch) is torch.Tensor and torch.equal(batch[0], whole)
    assert not torch.equal(batch[1], whole)


def test_test_transform_is_deterministic(crop):
    transform = build_test_transform(SIZE, IMAGENET_MEAN, IMAGENET_STD)
    torch.manual_seed(0)
    first = transform(crop)
    torch.manual_seed(1)
    assert torch.equal(first, transform(crop))


def test_flip_probability_one_mirrors_the_resized_crop(crop):
    expected = bicubic_reference(crop).flip(-1)
    for seed in range(5):
        torch.manual_seed(seed)
        torch.testing.assert_close(plain_train(flip_prob=1.0)(crop), expected)


def test_erasing_probability_one_overwrites_a_box_with_noise(crop):
    reference = plain_train()(crop)
    for seed in range(5):
        torch.manual_seed(seed)
        output = plain_train(erasing_prob=1.0)(crop)
        changed = (output != reference).any(0)
        rows, cols = changed.nonzero(as_tuple=True)
        box = changed[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert box.float().mean() > 0.9  # one rectangle (noise may rarely equal a pixel)
        assert changed.float().mean() >= 0.02 * 0.9
        assert output[:, changed].std() > 0.5  # per-pixel random fill, not a constant


def test_padding_then_crop_shifts_the_image_by_at_most_the_padding(crop):
    reference = plain_train()(crop)
    black = (-torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD)).view(3, 1, 1)
    height, width = SIZE
    shifts = set()
    for seed in range(8):
        torch.manual_seed(seed)
        output = plain_train(padding=3)(crop)
        padded = black.expand(3, height + 6, width + 6).clone()
        padded[:, 3:-3, 3:-3] = reference
        matches = [
            (dy, dx)
            for dy in range(7)
            for dx in range(7)
            if torch.equal(padded[:, dy : dy + height, dx : dx + width], output)
        ]
        assert matches, "the output is not a window of the zero-padded resized crop"
        shifts.add(matches[0])
    assert len(shifts) > 1


def test_same_seed_same_augmentation(crop):
    transform = build_train_transform(SIZE, IMAGENET_MEAN, IMAGENET_STD, 0.5, 10, 0.5)
    torch.manual_seed(3)
    first = [transform(crop) for _ in range(4)]
    torch.manual_seed(3)
    second = [transform(crop) for _ in range(4)]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not all(torch.equal(first[0], other) for other in first[1:])


@pytest.mark.parametrize(
    ("arch", "expected"),
    [
        ("RN50", (IMAGENET_MEAN, IMAGENET_STD)),
        ("RN50x4", (IMAGENET_MEAN, IMAGENET_STD)),
        ("tiny-rn", (IMAGENET_MEAN, IMAGENET_STD)),
        ("ViT-B-16", (HALF_MEAN, HALF_STD)),
        ("tiny-vit", (HALF_MEAN, HALF_STD)),
    ],
)
def test_normalization_follows_the_tower_type(arch, expected):
    assert normalization_for(arch) == expected


@pytest.mark.parametrize("arch", ["convnext", "tiny", "brnx"])
def test_unknown_tower_type_is_an_error_naming_it(arch):
    with pytest.raises(ValueError, match=arch):
        normalization_for(arch)


@pytest.mark.parametrize(
    "kwargs",
    [{"size": (32,)}, {"size": (0, 16)}, {"std": (0.5, 0.0, 0.5)}, {"mean": (0.5,)},
     {"flip_prob": 1.5}, {"erasing_prob": -0.1}, {"padding": -1}],
)
def test_bad_settings_are_rejected(kwargs):
    with pytest.raises(ValueError):
        build_train_transform(**(VALID | kwargs))
