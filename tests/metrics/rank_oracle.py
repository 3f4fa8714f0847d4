"""The readable per-query evaluation (torchreid's loop), kept as the reference for the fast one.

Slow on purpose: one sort per query. Tests and ``tests/benchmarks/bench_metrics.py`` check that
:func:`clip_reid.metrics.evaluate_rank` agrees with it; read this one to see the protocol.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clip_reid.metrics.inputs import (
    RankingLabels,
    check_ap_mode,
    check_finite,
    check_positive,
    distance_matrix_array,
)
from clip_reid.metrics.protocol import excluded_from_ranking
from clip_reid.metrics.rank_result import RankResult


def evaluate_rank_reference(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int = 50,
    ap_mode: str = "standard",
) -> RankResult:
    """Same contract as :func:`clip_reid.metrics.evaluate_rank`, one query at a time."""
    check_ap_mode(ap_mode)
    check_positive(max_rank, "max_rank")
    distances = distance_matrix_array(distmat)
    check_finite(distances, 0)
    num_query, num_gallery = distances.shape
    labels = RankingLabels.build(q_pids, g_pids, q_camids, g_camids, num_query, num_gallery)
    max_rank = min(max_rank, num_gallery)

    all_cmc, all_ap, all_inp = [], [], []
    query_ap = np.full(num_query, np.nan)
    for q in range(num_query):
        order = np.argsort(distances[q], kind="stable")  # ties: lower gallery index first
        pids, camids = labels.g_pids[order], labels.g_camids[order]
        keep = ~excluded_from_ranking(labels.q_pids[q], labels.q_camids[q], pids, camids)
        matches = (pids[keep] == labels.q_pids[q]).astype(np.float64)
        if not matches.any():
            continue  # no true match left: skipped, as in torchreid

        cmc = np.minimum(matches.cumsum(), 1)
        all_cmc.append(np.pad(cmc, (0, max(0, max_rank - len(cmc))), constant_values=1)[:max_rank])

        num_rel = matches.sum()
        hits_so_far = matches.cumsum()
        precision = hits_so_far / np.arange(1, len(matches) + 1)
        if ap_mode == "standard":
            ap = (precision * matches).sum() / num_rel
        else:  # compute_AP.m: trapezoid between the previous and the current precision
            previous_precision = np.concatenate(([1.0], precision[:-1]))
            recall_step = matches / num_rel
            ap = (recall_step * (previous_precision + precision) / 2).sum()
        hardest = np.flatnonzero(matches)[-1]
        all_ap.append(ap)
        all_inp.append(num_rel / (hardest + 1))
        query_ap[q] = ap

    if not all_cmc:
        raise ValueError("No query has a true match in the gallery.")
    return RankResult(
        cmc=np.mean(all_cmc, axis=0),
        mAP=float(np.mean(all_ap)),
        mINP=float(np.mean(all_inp)),
        num_valid_queries=len(all_cmc),
        num_skipped_queries=num_query - len(all_cmc),
        query_ap=query_ap,
    )
