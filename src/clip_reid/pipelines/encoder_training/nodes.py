"""Nodes of encoder_training: fine-tune the image encoder against the stage-1 text features."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd

from clip_reid.modeling import (
    ClipReidModel,
    TextEncoder,
    load_reid_model,
    reid_checkpoint,
    tokenizer_for,
)
from clip_reid.modeling.backbone import load_clip_backbone
from clip_reid.modeling.caption_alignment import image_caption_features
from clip_reid.modeling.losses import Stage2LossWeights
from clip_reid.modeling.onnx_export import check_onnx, export_onnx
from clip_reid.modeling.stage2 import (
    EncoderTrainingModule,
    IdentityBatchDataModule,
    Stage2Optimisation,
)
from clip_reid.modeling.text_tower import text_tower_state
from clip_reid.modeling.trainer import (
    build_trainer,
    epochs_completed,
    finish_work_dir,
    raise_if_interrupted,
    resume_checkpoint,
)
from clip_reid.pipelines.model_params import (
    normalization,
    reid_config,
    train_transform,
    trainer_settings,
)

logger = logging.getLogger(__name__)


def train_reid_model(
    image_index: pd.DataFrame,
    text_features: dict[str, Any],
    clip_backbone: dict[str, Any],
    image_captions: pd.DataFrame,
    model: dict[str, Any],
    encoder_training: dict[str, Any],
    trainer: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    """Stage 2: fine-tune the CLIP image encoder; return a self-describing checkpoint."""
    L.seed_everything(seed, workers=True, verbose=False)
    train = image_index[image_index["split"] == "train"].reset_index(drop=True)
    features = text_features["features"]
    num_classes = int(train["label"].max()) + 1
    if features.shape[0] != num_classes:
        raise ValueError(
            f"text_features has {features.shape[0]} identities but the training split has "
            f"{num_classes}: re-run prompt_learning on this image_index."
        )
    config = reid_config(model, num_classes, int(train["camid"].max()) + 1)
    clip = load_clip_backbone(clip_backbone, config.clip)
    reid_model = ClipReidModel(config, clip).train()  # BN stats must update
    optim = Stage2Optimisation(
        **{k: v for k, v in encoder_training["optimizer"].items() if k != "milestones"},
        milestones=tuple(encoder_training["optimizer"].get("milestones", (40, 70))),
        loss_weights=Stage2LossWeights(**encoder_training["loss_weights"]),
    )
    captions = None
    if optim.loss_weights.caption > 0:
        captions = _caption_features(clip, config.clip.arch, train, image_captions)
    module = EncoderTrainingModule(reid_model, features, optim, use_cameras=config.num_cameras > 0,
                                   caption_features=captions)
    data = IdentityBatchDataModule(
        train, train_transform(model, encoder_training.get("augmentation", {})),
        encoder_training["batch_size"], encoder_training["num_instances"], seed,
        trainer.get("num_workers", 0),
    )
    settings = trainer_settings(trainer, encoder_training["max_epochs"])
    work_dir = Path(encoder_training["work_dir"])
    fingerprint = {"model": model, "encoder_training": encoder_training, "trainer": trainer,
                   "seed": seed, "num_images": len(train), "num_classes": num_classes,
                   "text_features_sum": float(features.double().sum())}
    resume = resume_checkpoint(work_dir, fingerprint)
    fit = build_trainer(settings, work_dir, "encoder_training")
    fit.fit(module, datamodule=data, ckpt_path=resume, weights_only=True)
    raise_if_interrupted(fit, work_dir)
    epochs = epochs_completed(work_dir)
    finish_work_dir(work_dir)
    metrics = {k: float(v) for k, v in fit.callback_metrics.items() if v.numel() == 1}
    mean, std = normalization(model)
    return reid_checkpoint(module.model.eval(), final_metrics=metrics, epochs=epochs,
                           normalization={"mean": mean, "std": std},
                           text_tower=text_tower_state(clip))


def _caption_features(clip, arch: str, train: pd.DataFrame,
                      image_captions: pd.DataFrame) -> tuple[Any, Any]:
    """Training images' caption features (training captions only: no test text leaks in)."""
    features, has_caption = image_caption_features(
        TextEncoder(clip, tokenizer_for(arch)).eval(), train["path"].tolist(), image_captions)
    if not has_caption.any():
        raise ValueError(
            "encoder_training.loss_weights.caption > 0 but no training image has a caption: "
            "configure captions.sources, or set the caption weight to 0."
        )
    logger.info("Caption alignment: %d of %d training images have captions.",
                int(has_caption.sum()), len(train))
    return features, has_caption


def export_reid_model_onnx(reid_model: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """The trained test-time encoder as ONNX (dynamic batch), checked with onnxruntime."""
    model = load_reid_model(reid_model)
    onnx_bytes = export_onnx(model)
    difference = check_onnx(model, onnx_bytes)
    logger.info("ONNX export: max |onnxruntime - torch| = %.2e over the test feature", difference)
    if difference > 1e-4:
        raise ValueError(
            f"ONNX export differs from PyTorch by {difference:.2e} (> 1e-4 in fp32); not saved."
        )
    return onnx_bytes, {"max_abs_diff": difference, "feature_dim": model.feature_dim,
                        "input_size": list(model.config.image_size)}
