"""Test-time embedding of index splits with a ReID checkpoint, and the untrained baseline model."""

from __future__ import annotations

import logging
import time

import pandas as pd
import torch

from clip_reid.data.splits import select_split
from clip_reid.evaluation.feature_set import FeatureSet
from clip_reid.modeling.backbone import ClipBackbone
from clip_reid.modeling.features import extract_features, recalibrate_batch_norm
from clip_reid.modeling.model_settings import ModelSettings
from clip_reid.modeling.reid_checkpoint import ReidCheckpoint
from clip_reid.modeling.reid_model import ClipReidModel

logger = logging.getLogger(__name__)


def embed_splits(
    checkpoint: ReidCheckpoint, image_index: pd.DataFrame, splits: tuple[str, ...],
    device: torch.device, batch_size: int, flip: bool, dtype: str, num_workers: int,
) -> tuple[FeatureSet, ...]:
    """The features of each split's images, with the model's own test transform."""
    model = checkpoint.model()
    transform = checkpoint.test_transform()
    start = time.perf_counter()
    outputs = []
    for split in splits:
        frame = select_split(image_index, split)
        features = extract_features(model, frame, transform, batch_size=batch_size, flip=flip,
                                    dtype=dtype, use_cameras=model.config.num_cameras > 0,
                                    num_workers=num_workers, device=device, description=split)
        outputs.append(FeatureSet(features, frame["pid"].to_numpy(), frame["camid"].to_numpy(),
                                  tuple(frame["path"]), checkpoint.fingerprint))
    logger.info("Embedded %d images in %.1f s (%s on %s)", sum(len(o) for o in outputs),
                time.perf_counter() - start, dtype, device)
    return tuple(outputs)


def untrained_checkpoint(
    image_index: pd.DataFrame, clip_backbone: ClipBackbone, model: ModelSettings,
    device: torch.device,
) -> ReidCheckpoint:
    """The baseline: the CLIP image encoder stages 1 and 2 start from, before ReID training."""
    train = select_split(image_index, "train")
    config = model.reid_config(max(int(train["label"].max()) + 1, 1), 0)
    clip = clip_backbone.clip_model(config.clip)
    reid_model = ClipReidModel(config, clip)
    # Random BN statistics would collapse every feature (a tuned backbone has trained ones).
    if config.clip.random_image_tower and not clip_backbone.finetuned:
        recalibrate_batch_norm(reid_model.image_encoder, train, model.eval_transform(),
                               device=device)
    mean, std = model.normalization()
    return ReidCheckpoint.from_model(reid_model.eval().cpu(), {"mean": mean, "std": std},
                                     text_tower=clip)
