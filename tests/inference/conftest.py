"""Tiny random ReID checkpoints (and their ONNX exports) shared by the inference tests."""

from __future__ import annotations

import pytest
import torch

from clip_reid.data.transforms import normalization_for
from clip_reid.modeling import ClipReidModel, ClipSpec, ReidCheckpoint, load_clip
from clip_reid.modeling.features import batch_norm_calibration
from clip_reid.modeling.model_settings import ModelSettings
from clip_reid.modeling.onnx_export import export_onnx

IMAGE_SIZE = (64, 32)


def tiny_checkpoint(arch: str = "tiny-rn", image_size: tuple[int, int] = IMAGE_SIZE,
                    num_cameras: int = 0, seed: int = 0, neck_feat: str = "before",
                    with_text: bool = True) -> ReidCheckpoint:
    """A random tiny ReID model as the encoder_training pipeline saves it (``with_text=False``:
    as it saved it before the text tower was stored)."""
    settings = ModelSettings(clip=ClipSpec(arch, seed=seed), image_size=image_size,
                             use_sie=num_cameras > 0, neck_feat=neck_feat)
    config = settings.reid_config(num_classes=5, num_cameras=num_cameras)
    clip = load_clip(config.clip)
    model = ClipReidModel(config, clip)
    _calibrate_batch_norm(model, seed)
    mean, std = normalization_for(arch)
    return ReidCheckpoint.from_model(model, {"mean": mean, "std": std},
                                     text_tower=clip if with_text else None)


def _calibrate_batch_norm(model: ClipReidModel, seed: int) -> None:
    """Random-init BN statistics make eval features nearly constant, which would make feature
    comparisons vacuous: estimate them on a batch of noise instead (ViTs have no BatchNorm)."""
    with batch_norm_calibration(model.image_encoder) as has_norms, torch.no_grad():
        if has_norms:
            model.image_encoder(torch.randn(16, 3, *model.config.image_size,
                                            generator=torch.Generator().manual_seed(seed)))
    model.eval()


@pytest.fixture(scope="session")
def rn_checkpoint() -> ReidCheckpoint:
    return tiny_checkpoint()


@pytest.fixture(scope="session")
def rn_onnx(rn_checkpoint) -> bytes:

    return export_onnx(rn_checkpoint.model())


@pytest.fixture(scope="session")
def make_checkpoint():
    """The ``tiny_checkpoint`` factory, for tests that need another backbone or size."""
    return tiny_checkpoint
