"""Tiny random ReID checkpoints (and their ONNX exports) shared by the inference tests."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from clip_reid.data.transforms import normalization_for
from clip_reid.modeling import ClipReidModel, ClipSpec, ReidConfig, load_clip, reid_checkpoint
from clip_reid.modeling.features import batch_norm_calibration
from clip_reid.modeling.onnx_export import export_onnx
from clip_reid.modeling.text_tower import text_tower_state

IMAGE_SIZE = (64, 32)


def tiny_checkpoint(arch: str = "tiny-rn", image_size: tuple[int, int] = IMAGE_SIZE,
                    num_cameras: int = 0, seed: int = 0, neck_feat: str = "before",
                    with_text: bool = True) -> dict[str, Any]:
    """A random tiny ReID model as the encoder_training pipeline saves it (``with_text=False``:
    as it saved it before the text tower was stored)."""
    config = ReidConfig(clip=ClipSpec(arch, seed=seed), num_classes=5, image_size=image_size,
                        num_cameras=num_cameras, neck_feat=neck_feat)
    clip = load_clip(config.clip)
    model = ClipReidModel(config, clip)
    _calibrate_batch_norm(model, seed)
    mean, std = normalization_for(arch)
    text = {"text_tower": text_tower_state(clip)} if with_text else {}
    return reid_checkpoint(model, normalization={"mean": mean, "std": std}, **text)


def _calibrate_batch_norm(model: ClipReidModel, seed: int) -> None:
    """Random-init BN statistics make eval features nearly constant, which would make feature
    comparisons vacuous: estimate them on a batch of noise instead (ViTs have no BatchNorm)."""
    with batch_norm_calibration(model.image_encoder) as has_norms, torch.no_grad():
        if has_norms:
            model.image_encoder(torch.randn(16, 3, *model.config.image_size,
                                            generator=torch.Generator().manual_seed(seed)))
    model.eval()


@pytest.fixture(scope="session")
def rn_checkpoint() -> dict[str, Any]:
    return tiny_checkpoint()


@pytest.fixture(scope="session")
def rn_onnx(rn_checkpoint) -> bytes:
    from clip_reid.modeling import load_reid_model

    return export_onnx(load_reid_model(rn_checkpoint))


@pytest.fixture(scope="session")
def make_checkpoint():
    """The ``tiny_checkpoint`` factory, for tests that need another backbone or size."""
    return tiny_checkpoint
