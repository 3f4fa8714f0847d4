"""Validated inputs of k-reciprocal re-ranking, shared by the sparse and the dense versions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from clip_reid.metrics.distance import as_feature_matrix, check_metric, prepare_features

RERANK_METRICS = ("euclidean", "cosine")
"""Re-ranking divides each row by its maximum and weighs neighbours by exp(-distance), which
needs non-negative distances: the negative dot product is not allowed."""


def row_maxima(distances: Tensor) -> Tensor:
    """Each row's maximum, the divisor of the row normalisation; kept above 0 so a row of
    identical images (all distances 0) stays 0 instead of becoming NaN."""
    return distances.max(dim=1).values.clamp_(min=torch.finfo(distances.dtype).tiny)


@dataclass(frozen=True)
class RerankInputs:
    """Query then gallery features stacked (L2-normalised if asked, then prepared for ``metric``)
    and the parameters."""

    features: Tensor
    num_query: int
    k1: int
    k2: int
    lambda_value: float
    metric: str

    @property
    def num_all(self) -> int:
        return int(self.features.shape[0])

    @property
    def half_k1(self) -> int:
        """The neighbourhood size of the expansion step, round(k1 / 2) as the reference code."""
        return int(round(self.k1 / 2))

    @classmethod
    def build(
        cls, query_features: Any, gallery_features: Any, k1: int, k2: int, lambda_value: float,
        metric: str, normalize: bool = True,
    ) -> RerankInputs:
        """Validate and stack the features; ``normalize`` L2-normalises each one first, as the
        official CLIP-ReID evaluator does (``FEAT_NORM: 'yes'``) before re-ranking."""
        check_metric(metric, RERANK_METRICS)
        query = as_feature_matrix(query_features, "query_features")
        gallery = as_feature_matrix(gallery_features, "gallery_features")
        if query.shape[1] != gallery.shape[1]:
            raise ValueError(
                f"query features have dim {query.shape[1]} but gallery features "
                f"{gallery.shape[1]}: extract both with the same model."
            )
        num_all = query.shape[0] + gallery.shape[0]
        if query.shape[0] == 0 or gallery.shape[0] == 0:
            raise ValueError("re-ranking needs at least one query and one gallery image.")
        if not 1 <= k1 < num_all:
            raise ValueError(
                f"k1={k1} needs more than k1 images (query + gallery = {num_all}): lower k1."
            )
        if not 1 <= k2 <= k1 + 1:
            raise ValueError(f"k2 must be in [1, k1 + 1] = [1, {k1 + 1}], got {k2}.")
        if not 0.0 <= lambda_value <= 1.0:
            raise ValueError(f"lambda_value must be in [0, 1], got {lambda_value}.")
        with torch.no_grad():
            features = torch.cat([query, gallery])
            if normalize:
                features = torch.nn.functional.normalize(features, dim=1)
            features = prepare_features(features, metric)
        return cls(features, int(query.shape[0]), int(k1), int(k2), float(lambda_value), metric)
