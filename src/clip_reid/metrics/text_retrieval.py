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
import pandas as pd
import torch

from clip_reid.data.splits import TEST_SPLITS
from clip_reid.metrics.distance import compute_distance_matrix
from clip_reid.metrics.inputs import labels_array
from clip_reid.metrics.protocol import DISTRACTOR_PID, JUNK_PID
from clip_reid.metrics.rank import evaluate_rank
from clip_reid.metrics.rank_result import RankResult

# A camera id no gallery image has: evaluate_rank then removes nothing for being "same camera".
NO_CAMERA = -(2**62)


def sentences_of_test_identities(
    image_captions: pd.DataFrame, image_index: pd.DataFrame,
    sources: tuple[str, ...] | None = ("attributes",),
) -> pd.DataFrame:
    """The text queries: unique (pid, caption) of captions of test-split images (query and
    gallery) whose identity is not a training identity, from ``sources`` (None = every source).
    Sorted by pid then caption, so the query order is reproducible."""
    missing = {"path", "pid", "caption", "source"} - set(image_captions.columns)
    if missing:
        raise ValueError(f"image_captions lacks column(s) {sorted(missing)}.")
    split_of = dict(zip(image_index["path"], image_index["split"], strict=True))
    train_pids = set(image_index.loc[image_index["split"] == "train", "pid"].tolist())
    rows = image_captions[image_captions["path"].map(split_of).isin(TEST_SPLITS)]
    rows = rows[~rows["pid"].isin(train_pids | {JUNK_PID, DISTRACTOR_PID})]
    if sources is not None:
        rows = rows[rows["source"].isin(sources)]
    queries = rows[["pid", "caption"]].drop_duplicates()
    return queries.sort_values(["pid", "caption"]).reset_index(drop=True).astype(
        {"pid": "int64"}
    )


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
    totals = dict.fromkeys(("rank1", "rank5", "rank10", "mAP", "mINP"), 0.0)
    for _ in range(repeats):
        random_features = torch.randn(len(text_pids) + len(gallery_pids), 16, generator=generator)
        result = evaluate_text_retrieval(
            random_features[:len(text_pids)], text_pids, random_features[len(text_pids):],
            gallery_pids, max_rank,
        )
        for name, value in rank_summary(result).items():
            totals[name] += value / repeats
    return totals


def rank_summary(result: RankResult) -> dict[str, float]:
    """The headline numbers of a ranking (fractions in [0, 1])."""
    return {"rank1": result.rank(1), "rank5": result.rank(min(5, len(result.cmc))),
            "rank10": result.rank(min(10, len(result.cmc))), "mAP": result.mAP,
            "mINP": result.mINP}
