"""Text-to-image person retrieval, measured as text-based person search is (CUHK-PEDES, IRRA):
every sentence describing a test identity is a query over all gallery images, a gallery image
matches when it shows the same identity, and Rank-k / mAP / mINP come from the same ranking
machinery as image queries, without the same-camera filter (a sentence has no camera).

Only test-split identities' sentences are used: training sentences describe people the model
was trained on and would measure memorisation, not retrieval.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from clip_reid.metrics.distance import compute_distance_matrix
from clip_reid.metrics.inputs import labels_array
from clip_reid.metrics.rank import evaluate_rank
from clip_reid.metrics.rank_result import HEADLINE_METRICS, RankResult

# A camera id no gallery image has: evaluate_rank then removes nothing for being "same camera".
NO_CAMERA = -(2**62)


def evaluate_text_retrieval(
    text_features: Any, text_pids: Any, gallery_projections: Any, gallery_pids: Any,
    max_rank: int = 50, ap_mode: str = "standard",
) -> RankResult:
    """CMC, mAP and mINP of text queries over a gallery, ranked by cosine similarity between
    text features and the gallery images' projection features (the space stage 2 aligns with
    the text tower). Queries whose identity has no gallery image are skipped and counted."""
    text_pids = labels_array(text_pids, "text_pids")
    gallery_pids = labels_array(gallery_pids, "gallery_pids")
    distances = compute_distance_matrix(text_features, gallery_projections, "cosine")
    no_camera = np.full(len(text_pids), NO_CAMERA, dtype=np.int64)
    return evaluate_rank(distances, text_pids, gallery_pids, no_camera,
                         np.zeros(len(gallery_pids), dtype=np.int64), max_rank, ap_mode)


def chance_text_retrieval(
    text_pids: Any, gallery_pids: Any, max_rank: int = 50, repeats: int = 10, seed: int = 0,
) -> dict[str, float]:
    """Rank-1/5/10, mAP and mINP of a ranking that knows nothing (random distances), averaged
    over ``repeats`` draws: the level a model must beat for its scores to mean anything."""
    text_pids = labels_array(text_pids, "text_pids")
    generator = torch.Generator().manual_seed(seed)
    totals = dict.fromkeys(HEADLINE_METRICS, 0.0)
    for _ in range(repeats):
        random_features = torch.randn(len(text_pids) + len(gallery_pids), 16, generator=generator)
        result = evaluate_text_retrieval(
            random_features[:len(text_pids)], text_pids, random_features[len(text_pids):],
            gallery_pids, max_rank,
        )
        for name, value in result.headline().items():
            totals[name] += value / repeats
    return totals
