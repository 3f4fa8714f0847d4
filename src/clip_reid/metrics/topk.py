"""Top-k ranked lists: evaluating them (for galleries too large for a dense matrix) and building
them from a dense matrix for display, under the same Market-1501 protocol as ``evaluate_rank``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clip_reid.metrics.inputs import (
    RankingLabels,
    check_ap_mode,
    check_positive,
    distance_matrix_array,
    to_numpy,
)
from clip_reid.metrics.protocol import JUNK_PID, excluded_from_ranking
from clip_reid.metrics.rank_result import RankResult, ScoreAccumulator


def evaluate_topk(
    indices: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int = 50,
    ap_mode: str = "standard",
    chunk_size: int = 1024,
) -> RankResult:
    """CMC, mAP and mINP from retrieved top-k gallery indices (closest first, -1 = none).

    Same protocol as :func:`clip_reid.metrics.evaluate_rank`: same-pid-same-camera items and
    junk are dropped from each list; a query whose identity has no kept image anywhere in the
    gallery is skipped. Scores are TRUNCATED at k: a match that was not retrieved adds nothing
    to AP (which still divides by all the query's matches in the gallery), INP is 0 unless the
    hardest match was retrieved, and CMC beyond the retrieved kept items counts as a miss. They
    are therefore lower bounds of the dense scores, and equal to them when k = gallery size.
    """
    retrieved = retrieved_indices(indices)
    labels = RankingLabels.build(q_pids, g_pids, q_camids, g_camids, retrieved.shape[0],
                                 len(to_numpy(g_pids, "g_pids")))
    return evaluate_topk_labelled(retrieved, labels, max_rank, ap_mode, chunk_size)


def retrieved_indices(indices: Any) -> np.ndarray:
    """``indices`` as a 2-d integer array (num_query, k), or a ValueError saying why not."""
    retrieved = to_numpy(indices, "indices")
    if retrieved.ndim != 2 or not np.issubdtype(retrieved.dtype, np.integer):
        raise ValueError(
            f"indices must be a 2-d integer array (num_query, k), got shape {retrieved.shape} "
            f"and dtype {retrieved.dtype}."
        )
    return retrieved


def evaluate_topk_labelled(
    indices: Any, labels: RankingLabels, max_rank: int = 50, ap_mode: str = "standard",
    chunk_size: int = 1024,
) -> RankResult:
    """:func:`evaluate_topk` with labels already checked (one ranking, many reports)."""
    check_ap_mode(ap_mode)
    check_positive(max_rank, "max_rank")
    check_positive(chunk_size, "chunk_size")
    retrieved = retrieved_indices(indices)
    num_query, num_gallery = labels.check_shape((retrieved.shape[0], len(labels.g_pids)))
    if retrieved.size and (retrieved.min() < -1 or retrieved.max() >= num_gallery):
        raise ValueError(
            f"indices must lie in [-1, {num_gallery - 1}] (gallery positions, -1 = none), got "
            f"values from {retrieved.min()} to {retrieved.max()}."
        )
    num_relevant = relevant_counts(labels)
    scores = ScoreAccumulator(num_query, min(max_rank, num_gallery))
    for start in range(0, num_query, chunk_size):
        rows = slice(start, min(start + chunk_size, num_query))
        hit_ranks = retrieved_hit_ranks(retrieved[rows], labels, rows)
        scores.add(rows, hit_ranks, num_relevant[rows], ap_mode)
    return scores.result()


def relevant_counts(labels: RankingLabels) -> np.ndarray:
    """Each query's number of true matches in the whole gallery under the protocol: the
    counting form of ``excluded_from_ranking`` (same pid, minus same view, junk left out)."""
    real = labels.g_pids != JUNK_PID
    same_pid = count_lookup(labels.g_pids[real], labels.q_pids)
    gallery_views, query_views = view_codes(
        (labels.g_pids[real], labels.g_camids[real]), (labels.q_pids, labels.q_camids)
    )
    return same_pid - count_lookup(gallery_views, query_views)


def view_codes(
    gallery: tuple[np.ndarray, np.ndarray], query: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """One integer per (pid, camid) pair, shared by gallery and queries, so pairs can be counted."""
    pids = np.concatenate([gallery[0], query[0]])
    camids = np.concatenate([gallery[1], query[1]])
    _, codes = np.unique(np.stack([pids, camids], axis=1), axis=0, return_inverse=True)
    codes = codes.ravel()
    return codes[: len(gallery[0])], codes[len(gallery[0]) :]


def count_lookup(population: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """How often each value of ``queries`` occurs in ``population``."""
    values, counts = np.unique(population, return_counts=True)
    if not len(values):
        return np.zeros(len(queries), dtype=np.int64)
    position = np.clip(np.searchsorted(values, queries), 0, len(values) - 1)
    return np.where(values[position] == queries, counts[position], 0)


def retrieved_hit_ranks(
    retrieved: np.ndarray, labels: RankingLabels, rows: slice
) -> np.ndarray:
    """Sorted 1-based ranks of the matches in each retrieved list, padded with ``inf``."""
    present = retrieved >= 0
    safe = np.where(present, retrieved, 0)
    pids, camids = labels.g_pids[safe], labels.g_camids[safe]
    same_pid = pids == labels.q_pids[rows, None]
    kept = present & ~excluded_from_ranking(labels.q_pids[rows, None],
                                            labels.q_camids[rows, None], pids, camids)
    hits = same_pid & kept
    kept_rank = np.cumsum(kept, axis=1)
    slot = np.cumsum(hits, axis=1) - 1
    width = int(hits.sum(axis=1).max(initial=0))
    hit_rows, hit_cols = np.nonzero(hits)
    hit_ranks = np.full((len(retrieved), width), np.inf)
    hit_ranks[hit_rows, slot[hit_rows, hit_cols]] = kept_rank[hit_rows, hit_cols]
    return hit_ranks


def top_k_ranked(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    k: int = 10,
    chunk_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``k`` gallery items each query keeps under the protocol, and which match.

    Returns (indices, matches), both (num_query, k), in stable order (ties by gallery index);
    a list shorter than k is padded with index -1 and match False. Rows are not sorted whole:
    the first k kept items are among the k + (junk + same-view images) closest, so only those
    are selected (argpartition) and sorted, ``chunk_size`` queries at a time.
    """
    distances = distance_matrix_array(distmat)
    labels = RankingLabels.build(q_pids, g_pids, q_camids, g_camids, *distances.shape)
    return top_k_ranked_labelled(distances, labels, k, chunk_size)


def top_k_ranked_labelled(
    distmat: Any, labels: RankingLabels, k: int = 10, chunk_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k_ranked` with labels already checked (one ranking, many reports)."""
    check_positive(k, "k")
    check_positive(chunk_size, "chunk_size")
    distances = distance_matrix_array(distmat)
    num_query, num_gallery = labels.check_shape(distances.shape)
    num_junk = int((labels.g_pids == JUNK_PID).sum())
    gallery_views, query_views = view_codes(
        (labels.g_pids, labels.g_camids), (labels.q_pids, labels.q_camids)
    )
    same_view = count_lookup(gallery_views, query_views)
    indices = np.full((num_query, k), -1, dtype=np.int64)
    matches = np.zeros((num_query, k), dtype=bool)
    for start in range(0, num_query, chunk_size):
        rows = slice(start, min(start + chunk_size, num_query))
        width = min(num_gallery, k + num_junk + int(same_view[rows].max()))
        order = stable_smallest_columns(distances[rows], width)
        pids, camids = labels.g_pids[order], labels.g_camids[order]
        same_pid = pids == labels.q_pids[rows, None]
        kept = ~excluded_from_ranking(labels.q_pids[rows, None], labels.q_camids[rows, None],
                                      pids, camids)
        position = np.cumsum(kept, axis=1) - 1
        take_rows, take_cols = np.nonzero(kept & (position < k))
        slots = position[take_rows, take_cols]
        indices[start + take_rows, slots] = order[take_rows, take_cols]
        matches[start + take_rows, slots] = same_pid[take_rows, take_cols]
    return indices, matches


def stable_smallest_columns(block: np.ndarray, width: int) -> np.ndarray:
    """Column indices of each row's ``width`` smallest values, ordered as a stable argsort."""
    if width >= block.shape[1]:
        return np.argsort(block, axis=1, kind="stable")
    part = np.argpartition(block, width, axis=1)[:, : width + 1]
    values = np.take_along_axis(block, part, axis=1)
    order = np.lexsort((part, values), axis=-1)  # by value, ties by index
    values = np.take_along_axis(values, order, axis=1)
    chosen = np.take_along_axis(part, order, axis=1)[:, :width]
    for row in np.flatnonzero(values[:, width] == values[:, width - 1]):
        chosen[row] = np.argsort(block[row], kind="stable")[:width]  # a tie across the cut
    return chosen
