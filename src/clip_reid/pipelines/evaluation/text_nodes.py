"""Text-to-image retrieval node of the evaluation pipeline."""

from __future__ import annotations

from typing import Any

import pandas as pd

from clip_reid.evaluation import EvaluationSettings, FeatureSet
from clip_reid.evaluation.text_report import text_retrieval_report
from clip_reid.modeling.reid_checkpoint import ReidCheckpoint


def evaluate_text_queries(
    reid_model: ReidCheckpoint, gallery_features: FeatureSet, image_index: pd.DataFrame,
    image_captions: pd.DataFrame, evaluation: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Test identities' sentences over the gallery: the report and its MLflow metrics."""
    report, scores = text_retrieval_report(
        reid_model, gallery_features, image_index, image_captions,
        EvaluationSettings.from_params(evaluation, "evaluation"))
    return report, {f"text_{name}": {"value": float(value), "step": 0}
                    for name, value in scores.items()}
