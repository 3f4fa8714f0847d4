"""Evaluation: embed a query/gallery pair with a ReID checkpoint, rank it under the Market-1501
protocol, report image and text retrieval. The formulas are in clip_reid.metrics (arrays in,
numbers out); this package owns the settings, the artifacts and the reports."""

from clip_reid.evaluation.feature_set import FeatureSet
from clip_reid.evaluation.ranking import EvaluationOutcome, Ranking
from clip_reid.evaluation.settings import EvaluationSettings

__all__ = ["EvaluationOutcome", "EvaluationSettings", "FeatureSet", "Ranking"]
