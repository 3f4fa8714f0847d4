"""Nodes of evaluation: embed query and gallery, score them, and explain the ranking."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from clip_reid.data.evaluated_dataset import (
    EvaluatedDatasetError,
    describe_dataset,
    evaluated_query_gallery,
    training_query_gallery,
)
from clip_reid.data.settings import DatasetSettings, IngestionSettings
from clip_reid.evaluation import EvaluationSettings, FeatureSet, Ranking
from clip_reid.evaluation.embedding import embed_splits, untrained_checkpoint
from clip_reid.metrics.rank_result import HEADLINE_METRICS
from clip_reid.metrics.report import format_test_results
from clip_reid.modeling.backbone import ClipBackbone
from clip_reid.modeling.model_settings import ModelSettings
from clip_reid.modeling.reid_checkpoint import ReidCheckpoint
from clip_reid.modeling.trainer import TrainerSettings, resolve_device

logger = logging.getLogger(__name__)


def untrained_model(image_index: pd.DataFrame, clip_backbone: ClipBackbone,
                    model: dict[str, Any], trainer: dict[str, Any]) -> ReidCheckpoint:
    """The baseline: the CLIP image encoder stages 1 and 2 start from, before ReID training."""
    device = resolve_device(TrainerSettings.from_params(trainer, "trainer"))
    return untrained_checkpoint(image_index, clip_backbone,
                                ModelSettings.from_params(model, "model"), device)


def select_training_dataset(
    image_index: pd.DataFrame, dataset: dict[str, Any], evaluation: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The training dataset's query and gallery: what `evaluation_metrics` always reports."""
    target = EvaluationSettings.from_params(evaluation, "evaluation").dataset
    if target.is_set:
        logger.warning("evaluation.dataset (%s) is scored by `kedro run --pipelines "
                       "cross_dataset_evaluation`, into its own cross_dataset.* outputs; this "
                       "evaluation scores the training dataset.", target.root)
    return training_query_gallery(image_index, DatasetSettings.from_params(dataset, "dataset"))


def select_cross_dataset(
    image_index: pd.DataFrame, dataset: dict[str, Any], evaluation: dict[str, Any],
    ingestion: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """`evaluation.dataset`'s query and gallery (cross-domain), which must be set."""
    target = EvaluationSettings.from_params(evaluation, "evaluation").dataset
    if not target.is_set:
        raise EvaluatedDatasetError(
            "cross_dataset_evaluation needs the dataset to score: set evaluation.dataset.name "
            "and evaluation.dataset.root, e.g. --params evaluation.dataset.name=market1501,"
            "evaluation.dataset.root=<folder>.")
    return evaluated_query_gallery(
        image_index, DatasetSettings.from_params(dataset, "dataset"), target,
        IngestionSettings.from_params(ingestion, "ingestion"))


def extract_query_gallery_features(
    reid_model: ReidCheckpoint, image_index: pd.DataFrame, evaluation: dict[str, Any],
    trainer: dict[str, Any],
) -> tuple[FeatureSet, FeatureSet]:
    """Test features of the query and gallery splits, with the model's own test transform, on
    the `evaluation.embedding` engine (Ray is imported only when it is chosen)."""
    settings = EvaluationSettings.from_params(evaluation, "evaluation")
    hardware = TrainerSettings.from_params(trainer, "trainer")
    if settings.embedding.engine == "ray":
        from clip_reid.inference.ray_embedding import embed_splits_on_ray

        return embed_splits_on_ray(reid_model, image_index, ("query", "gallery"),
                                   settings.embedding, settings.batch_size, settings.flip,
                                   settings.dtype)
    return embed_splits(reid_model, image_index, ("query", "gallery"),
                        resolve_device(hardware, settings.device), settings.batch_size,
                        settings.flip, settings.dtype, hardware.num_workers)


def evaluate_features(
    query_features: FeatureSet, gallery_features: FeatureSet,
    evaluated_dataset: dict[str, Any], evaluation: dict[str, Any],
) -> tuple[dict, dict, pd.DataFrame, Figure, Figure]:
    """CMC / mAP / mINP under the Market-1501 protocol, predictions and figures; the report
    names the dataset evaluated."""
    outcome = Ranking(query_features, gallery_features,
                      EvaluationSettings.from_params(evaluation, "evaluation")).outcome()
    lines = format_test_results(outcome.result)  # once: the seed project's lines
    print(f"Evaluated on {describe_dataset(evaluated_dataset)}\n{lines}", flush=True)
    mlflow_metrics = {name: {"value": float(outcome.report[name]), "step": 0}
                      for name in HEADLINE_METRICS}
    return (outcome.report | {"dataset": evaluated_dataset}, mlflow_metrics, outcome.predictions,
            outcome.cmc_figure, outcome.ranked_figure)
