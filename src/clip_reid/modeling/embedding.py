"""Test-time embedding of index splits with a ReID checkpoint, and the untrained baseline model."""

from __future__ import annotations

import logging
import time
from typing import Any

import pandas as pd
import torch

from clip_reid.data.splits import select_split
from clip_reid.data.transforms import build_test_transform
from clip_reid.modeling.backbone import is_finetuned, load_clip_backbone
from clip_reid.modeling.features import extract_features, recalibrate_batch_norm
from clip_reid.modeling.model_settings import ModelSettings
from clip_reid.modeling.reid_model import ClipReidModel, load_reid_model, reid_checkpoint
from clip_reid.modeling.text_tower import text_tower_state

logger = logging.getLogger(__name__)


def embed_splits(
    checkpoint: dict[str, Any], image_index: pd.DataFrame, splits: tuple[str, ...],
    device: torch.device, batch_size: int, flip: bool, dtype: str, num_workers: int,
) -> tuple[dict[str, Any], ...]:
    """Features (with pids, camids, paths) of each split, with the model's own test transform."""
    model = load_reid_model(checkpoint)
    norm = checkpoint["normalization"]
    transform = build_test_transform(model.config.image_size, norm["mean"], norm["std"])
    start = time.perf_counter()
    outputs = []
    for split in splits:
        frame = select_split(image_index, split)
        features = extract_features(model, frame, transform, batch_size=batch_size, flip=flip,
                                    dtype=dtype, use_cameras=model.config.num_cameras > 0,
                                    num_workers=num_workers, device=device, description=split)
        outputs.append({"features": features, "pids": torch.tensor(frame["pid"].to_numpy()),
                        "camids": torch.tensor(frame["camid"].to_numpy()),
                        "paths": frame["path"].tolist()})
    logger.info("Embedded %d images in %.1f s (%s on %s)", sum(len(o["paths"]) for o in outputs),
                time.perf_counter() - start, dtype, device)
    return tuple(outputs)


def untrained_checkpoint(
    image_index: pd.DataFrame, clip_backbone: dict[str, Any], model: ModelSettings,
    device: torch.device,
) -> dict[str, Any]:
    """The baseline: the CLIP image encoder stages 1 and 2 start from, before ReID training."""
    train = select_split(image_index, "train")
    config = model.reid_config(max(int(train["label"].max()) + 1, 1), 0)
    clip = load_clip_backbone(clip_backbone, config.clip)
    reid_model = ClipReidModel(config, clip)
    # Random BN statistics would collapse every feature (a tuned backbone has trained ones).
    if config.clip.random_image_tower and not is_finetuned(clip_backbone):
        recalibrate_batch_norm(reid_model.image_encoder, train, model.eval_transform(),
                               device=device)
    mean, std = model.normalization()
    return reid_checkpoint(reid_model.eval().cpu(), normalization={"mean": mean, "std": std},
                           text_tower=text_tower_state(clip))
