"""Nodes of encoder_training: fine-tune the image encoder against the stage-1 text features."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from clip_reid.data.splits import select_split
from clip_reid.modeling.backbone import ClipBackbone
from clip_reid.modeling.encoder_training import EncoderTrainingSettings, train_encoder
from clip_reid.modeling.model_settings import ModelSettings
from clip_reid.modeling.onnx_export import ONNX_TOLERANCE, check_onnx, export_onnx
from clip_reid.modeling.prompt_artifacts import TextFeatures
from clip_reid.modeling.reid_checkpoint import ReidCheckpoint
from clip_reid.modeling.trainer import TrainerSettings

logger = logging.getLogger(__name__)


def train_reid_model(
    image_index: pd.DataFrame, text_features: TextFeatures, clip_backbone: ClipBackbone,
    image_captions: pd.DataFrame, model: dict[str, Any], encoder_training: dict[str, Any],
    trainer: dict[str, Any], seed: int,
) -> ReidCheckpoint:
    """Stage 2: fine-tune the CLIP image encoder; return a self-describing checkpoint."""
    return train_encoder(
        select_split(image_index, "train"), text_features, clip_backbone,
        ModelSettings.from_params(model, "model"),
        EncoderTrainingSettings.from_params(encoder_training, "encoder_training"),
        TrainerSettings.from_params(trainer, "trainer"), seed, image_captions=image_captions,
    )


def export_reid_model_onnx(reid_model: ReidCheckpoint) -> tuple[bytes, dict[str, Any]]:
    """The trained test-time encoder as ONNX (dynamic batch), checked with onnxruntime."""
    model = reid_model.model()
    onnx_bytes = export_onnx(model)
    difference = check_onnx(model, onnx_bytes)
    logger.info("ONNX export: max |onnxruntime - torch| = %.2e over the test feature", difference)
    if difference > ONNX_TOLERANCE:
        raise ValueError(f"ONNX export differs from PyTorch by {difference:.2e} "
                         f"(> {ONNX_TOLERANCE:g} in fp32); not saved.")
    return onnx_bytes, {"max_abs_diff": difference, "feature_dim": model.feature_dim,
                        "input_size": list(model.config.image_size)}
