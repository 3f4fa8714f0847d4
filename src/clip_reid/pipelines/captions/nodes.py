"""Nodes of captions: read every configured text source and measure its coverage."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from clip_reid.data.caption_gathering import gather_captions
from clip_reid.data.caption_sources import caption_coverage, training_pairs
from clip_reid.modeling.backbone import ClipBackbone
from clip_reid.modeling.caption_finetune import CaptionFinetuneSettings, caption_tuned_backbone
from clip_reid.modeling.caption_length import report_long_captions
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


def prepare_clip_backbone(
    image_index: pd.DataFrame, image_captions: pd.DataFrame, model: dict[str, Any],
    caption_finetune: dict[str, Any], trainer: dict[str, Any], seed: int,
) -> ClipBackbone:
    """The CLIP both training stages start from: as configured, or caption-tuned when enabled."""
    model_settings = ModelSettings.from_params(model, "model")
    settings = CaptionFinetuneSettings.from_params(caption_finetune, "caption_finetune")
    report_long_captions(image_captions["caption"], model_settings.clip.arch)
    if not settings.enabled:
        return ClipBackbone.of(model_settings.clip)
    return caption_tuned_backbone(training_pairs(image_index, image_captions), model_settings,
                                  settings, TrainerSettings.from_params(trainer, "trainer"), seed)
