"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) written densely, step by step as the paper.

The readable reference for :func:`clip_reid.metrics.re_rank`: it holds (N, N) matrices for
N = queries + gallery, so use it on small inputs (tests) only.

Steps: the features L2-normalised (``normalize``, the official CLIP-ReID inputs); original
distances of all N images, each row divided by its maximum (the reference code
divides each column by its maximum and transposes, the same for a symmetric distance); the
k1-reciprocal neighbours R(i) = {j in N(i, k1) : i in N(j, k1)} (N(i, k) = the k + 1 closest,
self included, ties by index); R(i) is expanded by R(c, round(k1/2)) of each c in R(i) sharing
more than 2/3 of its members with R(i); V[i, j] = exp(-d(i, j)) over the expansion, normalised
to sum 1; local query expansion replaces V[i] by the mean of V over the k2 closest of i; the
Jaccard distance is 1 - sum(min(V_i, V_j)) / sum(max(V_i, V_j)) and the result is
(1 - lambda) * Jaccard + lambda * original.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from clip_reid.metrics.distance import distances_from_prepared
from clip_reid.metrics.rerank_inputs import RerankInputs, row_maxima


def rerank_dense(
    query_features: Any,
    gallery_features: Any,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    metric: str = "euclidean",
    normalize: bool = True,
) -> torch.Tensor:
    """Re-ranked (num_query, num_gallery) float32 distances, with dense (N, N) matrices;
    ``normalize`` L2-normalises the features first (the official evaluator's inputs)."""
    inputs = RerankInputs.build(
        query_features, gallery_features, k1, k2, lambda_value, metric, normalize
    )
    num_query = inputs.num_query
    with torch.no_grad():
        original = distances_from_prepared(inputs.features, inputs.features, metric)
    original = original / row_maxima(original)[:, None]
    original = original.numpy()
    initial_rank = np.argsort(original, axis=1, kind="stable")

    weights = np.zeros(original.shape, dtype=np.float64)
    for i in range(inputs.num_all):
        reciprocal = k_reciprocal_neighbours(initial_rank, i, k1)
        expansion = reciprocal
        for candidate in reciprocal:
            candidate_set = k_reciprocal_neighbours(initial_rank, candidate, inputs.half_k1)
            shared = len(np.intersect1d(candidate_set, reciprocal))
            if shared > 2 / 3 * len(candidate_set):
                expansion = np.append(expansion, candidate_set)
        expansion = np.unique(expansion)
        weight = np.exp(-original[i, expansion].astype(np.float64))
        weights[i, expansion] = weight / weight.sum()

    if k2 > 1:
        weights = np.stack(
            [weights[initial_rank[i, :k2]].mean(axis=0) for i in range(len(weights))]
        )

    jaccard = np.empty((num_query, inputs.num_all - num_query))
    for i in range(num_query):
        overlap = np.minimum(weights[i], weights[num_query:]).sum(axis=1)
        jaccard[i] = 1 - overlap / (2 - overlap)
    final = (1 - lambda_value) * jaccard + lambda_value * original[:num_query, num_query:]
    return torch.from_numpy(final.astype(np.float32))


def k_reciprocal_neighbours(initial_rank: np.ndarray, i: int, k: int) -> np.ndarray:
    """R(i, k): the k + 1 closest of ``i`` that also have ``i`` among their k + 1 closest."""
    forward = initial_rank[i, : k + 1]
    backward = initial_rank[forward, : k + 1]
    return forward[(backward == i).any(axis=1)]
