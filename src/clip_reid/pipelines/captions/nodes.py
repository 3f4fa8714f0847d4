"""Nodes of captions: read every configured text source and measure its coverage."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import open_clip
import pandas as pd

from clip_reid.data.caption_gathering import gather_captions
from clip_reid.data.caption_sources import (
    caption_coverage,
)
from clip_reid.data.splits import select_split
from clip_reid.modeling.backbone import clip_backbone_checkpoint
from clip_reid.modeling.caption_finetune import CaptionFinetuneSettings, caption_tuned_backbone
from clip_reid.modeling.clip_factory import tokenizer_for
from clip_reid.modeling.model_settings import ModelSettings
from clip_reid.modeling.trainer import TrainerSettings
from clip_reid.pipelines.captions.settings import CaptionsSettings

logger = logging.getLogger(__name__)


def collect_captions(
    image_index: pd.DataFrame, dataset_root: str, captions: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Read each configured source (CUHK-PEDES JSON, attribute file, CSV) into one table."""
    sources = CaptionsSettings.from_params(captions, "captions").sources
    table = gather_captions(image_index, Path(dataset_root), sources.cuhk_pedes,
                            sources.attributes, sources.csv)
    coverage = caption_coverage(image_index, table)
    for row in coverage.itertuples():
        logger.info(
            "Captions %-10s %-7s: %d/%d images (%.1f%%), %d/%d identities", row.source, row.split,
            row.images_covered, row.images_total, 100 * row.image_coverage, row.ids_covered,
            row.ids_total,
        )
    metrics = {
        f"{row.source}.{row.split}.image_coverage": {
            "value": float(row.image_coverage), "step": 0,
        }
        for row in coverage.itertuples()
    }
    return table, coverage, metrics


def _report_long_captions(captions: pd.Series, arch: str) -> int:
    """Count the distinct captions longer than the text tower's context, in one INFO line.

    Truncation itself happens in ``TextEncoder.tokenize``; tokenizing to one token more than the
    context shows which captions it cuts (their extra position is not padding).
    """
    unique = captions.drop_duplicates().tolist()
    tokenizer = tokenizer_for(arch)
    config = open_clip.get_model_config(arch) or {}
    context = config.get("text_cfg", {}).get("context_length", 77)
    if not unique:
        return 0
    long = int((tokenizer(unique, context_length=context + 1)[:, context] != 0).sum())
    if long:
        logger.info("%d of %d distinct captions exceed the %d-token context of the %s text tower "
                    "and will be truncated (end-of-text token kept)", long, len(unique), context,
                    arch)
    return long


def _training_pairs(image_index: pd.DataFrame, image_captions: pd.DataFrame) -> pd.DataFrame:
    """(path, caption) pairs of training images only: test captions must not leak into training."""
    train_paths = select_split(image_index, "train")["path"]
    pairs = image_captions[image_captions["path"].isin(train_paths)]
    return pairs.sort_values(["path", "caption"]).reset_index(drop=True)


def prepare_clip_backbone(
    image_index: pd.DataFrame, image_captions: pd.DataFrame, model: dict[str, Any],
    caption_finetune: dict[str, Any], trainer: dict[str, Any], seed: int,
) -> dict[str, Any]:
    """The CLIP both training stages start from: as configured, or caption-tuned when enabled."""
    model_settings = ModelSettings.from_params(model, "model")
    settings = CaptionFinetuneSettings.from_params(caption_finetune, "caption_finetune")
    _report_long_captions(image_captions["caption"], model_settings.clip.arch)
    if not settings.enabled:
        return clip_backbone_checkpoint(model_settings.clip)
    return caption_tuned_backbone(_training_pairs(image_index, image_captions), model_settings,
                                  settings, TrainerSettings.from_params(trainer, "trainer"), seed)
