"""Vectorised CMC / mAP / mINP under the Market-1501 protocol (torchreid / official CLIP-ReID).

Protocol, per query: gallery images of the same pid AND the same camera are removed, and so is
junk (pid -1, as the official MATLAB code does); distractors (pid 0) are ordinary gallery images.
A query left with no true match is skipped and counted. Equal distances are ordered by gallery
index, i.e. as a stable sort (``np.argsort(kind="stable")``) orders them; torchreid's default
``np.argsort`` is not guaranteed stable, so on exact ties it agrees once it sorts stably too.

Why no full sort: every metric depends only on the rank of each true match among the kept
gallery items, and a match's rank is a count of the kept items that precede it. Sorting each
row of a Market-sized matrix costs seconds; counting costs a few passes over the rows. Per chunk
of queries: keep only the items not farther than the farthest match (the "relevant" items;
often a small fraction), bucket them by distance into a per-row histogram to count the items in
buckets before each match, and order exactly (by distance, then gallery index) only the few items
that share a bucket with a match. Memory is bounded by the chunk, not by the number of queries.
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
from clip_reid.metrics.protocol import JUNK_PID, excluded_from_ranking
from clip_reid.metrics.rank_result import RankResult, ScoreAccumulator


def evaluate_rank(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int = 50,
    ap_mode: str = "standard",
    chunk_size: int = 64,
) -> RankResult:
    """CMC (up to ``min(max_rank, num_gallery)``, as torchreid), mAP and mINP of ``distmat``.

    ``distmat`` is (num_query, num_gallery), smaller = closer, as a numpy array or a tensor.
    ``ap_mode`` is ``"standard"`` (torchreid) or ``"market_matlab"`` (official MATLAB code,
    see :func:`clip_reid.metrics.rank_result.per_query_scores`). ``chunk_size`` queries are
    processed at a time, which bounds the working memory to a few (chunk_size, num_gallery)
    arrays.
    """
    distances = distance_matrix_array(distmat)
    labels = RankingLabels.build(q_pids, g_pids, q_camids, g_camids, *distances.shape)
    return evaluate_rank_labelled(distances, labels, max_rank, ap_mode, chunk_size)


def evaluate_rank_labelled(
    distmat: Any, labels: RankingLabels, max_rank: int = 50, ap_mode: str = "standard",
    chunk_size: int = 64,
) -> RankResult:
    """:func:`evaluate_rank` with labels already checked (one ranking, many reports)."""
    check_ap_mode(ap_mode)
    check_positive(max_rank, "max_rank")
    check_positive(chunk_size, "chunk_size")
    distances = distance_matrix_array(distmat)
    num_query, num_gallery = labels.check_shape(distances.shape)
    candidates = MatchTable(labels)
    junk_columns = np.flatnonzero(labels.g_pids == JUNK_PID)  # the same for every query
    scores = ScoreAccumulator(num_query, min(max_rank, num_gallery))
    for start in range(0, num_query, chunk_size):
        rows = slice(start, min(start + chunk_size, num_query))
        block = distances[rows]
        check_finite(block, start)
        hit_ranks, num_relevant = chunk_hit_ranks(
            block, candidates.for_queries(rows), labels, rows, junk_columns,
        )
        scores.add(rows, hit_ranks, num_relevant, ap_mode)
    return scores.result()


class MatchTable:
    """For each query, the gallery indices sharing its pid (ascending), padded with -1.

    Built once per evaluation by grouping the non-junk gallery by pid, so a chunk finds its
    candidate matches by a table look-up instead of comparing every gallery pid.
    """

    def __init__(self, labels: RankingLabels) -> None:
        gallery = np.flatnonzero(
            np.isin(labels.g_pids, labels.q_pids) & (labels.g_pids != JUNK_PID)
        )
        order = gallery[np.argsort(labels.g_pids[gallery], kind="stable")]
        pids, starts, counts = np.unique(
            labels.g_pids[order], return_index=True, return_counts=True
        )
        width = int(counts.max()) if counts.size else 0
        self.table = np.full((len(pids) + 1, width), -1, dtype=np.int64)  # last row: no match
        group = np.repeat(np.arange(len(pids)), counts)
        self.table[group, np.arange(len(order)) - np.repeat(starts, counts)] = order
        position = np.searchsorted(pids, labels.q_pids)
        known = position < len(pids)
        known[known] = pids[position[known]] == labels.q_pids[known]
        self.query_group = np.where(known, position, len(pids))

    def for_queries(self, rows: slice) -> np.ndarray:
        return self.table[self.query_group[rows]]


def chunk_hit_ranks(
    block: np.ndarray,
    candidates: np.ndarray,
    labels: RankingLabels,
    rows: slice,
    junk_columns: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted 1-based ranks of each query's true matches among its kept gallery items.

    The protocol is applied where it can matter: to the candidates (the query's own identity)
    and, for junk, to whole columns, so no mask of the full block is built.
    Returns (hit_ranks, num_relevant): hit_ranks is (chunk, width) padded with ``inf``.
    """
    num_rows, num_gallery = block.shape
    present = candidates >= 0
    safe = np.where(present, candidates, 0)
    removed = present & excluded_from_ranking(
        labels.q_pids[rows, None], labels.q_camids[rows, None], labels.g_pids[safe],
        labels.g_camids[safe])
    positive = present & ~removed
    num_relevant = positive.sum(axis=1)
    targets = np.take_along_axis(block, safe, axis=1)
    farthest = np.where(positive, targets, -np.inf).max(axis=1, initial=-np.inf)
    nearest = np.where(positive, targets, np.inf).min(axis=1, initial=np.inf)

    relevant = block <= farthest[:, None]
    removed_rows, removed_slots = np.nonzero(removed)
    relevant[removed_rows, candidates[removed_rows, removed_slots]] = False
    if junk_columns.size:
        relevant[:, junk_columns] = False
    item_keys = np.flatnonzero(relevant)  # row * num_gallery + column, ascending
    item_rows = item_keys // num_gallery

    pos_rows, pos_slots = np.nonzero(positive)
    pos_items = np.searchsorted(item_keys, pos_rows * num_gallery + candidates[pos_rows, pos_slots])
    preceding = count_preceding(
        block.ravel()[item_keys], item_rows, pos_items, nearest, farthest, num_rows
    )
    hit_ranks = np.full(candidates.shape, np.inf)
    hit_ranks[pos_rows, pos_slots] = preceding + 1
    hit_ranks.sort(axis=1)
    return hit_ranks, num_relevant


def count_preceding(
    values: np.ndarray,
    rows: np.ndarray,
    targets: np.ndarray,
    nearest: np.ndarray,
    farthest: np.ndarray,
    num_rows: int,
) -> np.ndarray:
    """For each target item, how many items of its row come before it in (value, index) order.

    ``values``/``rows`` describe the relevant items in row-major order; ``targets`` indexes the
    true matches among them; ``nearest``/``farthest`` bound each row's target values.
    """
    per_row = max(len(values) // max(num_rows, 1), 1)
    num_buckets = int(np.clip(2 * per_row, 16, 16384))
    bucket = bucket_of(values, rows, nearest, farthest, num_buckets)
    width = num_buckets + 2
    keys = rows * width + bucket
    histogram = np.bincount(keys, minlength=num_rows * width).reshape(num_rows, width)
    before_bucket = (np.cumsum(histogram, axis=1) - histogram).ravel()

    shared = np.zeros(num_rows * width, dtype=bool)
    shared[keys[targets]] = True
    ambiguous = np.flatnonzero(shared[keys])
    order = np.lexsort((values[ambiguous], keys[ambiguous]))  # stable: ties keep index order
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    sorted_keys = keys[ambiguous][order]
    target_slot = np.searchsorted(ambiguous, targets)
    group_start = np.searchsorted(sorted_keys, keys[targets])
    within_bucket = position[target_slot] - group_start
    return before_bucket[keys[targets]] + within_bucket


def bucket_of(
    values: np.ndarray, rows: np.ndarray, low: np.ndarray, high: np.ndarray, num_buckets: int
) -> np.ndarray:
    """Bucket of each value within its row's [low, high]: 0 below ``low``, then 1 up to
    num_buckets + 1 at ``high``. Exactness needs only that it is non-decreasing in the value
    within a row (same arithmetic for every item of a row), so an item in an earlier bucket
    is strictly closer than any item of a later one.
    """
    dtype = values.dtype
    magnitude = np.maximum(np.maximum(np.abs(low), np.abs(high)), 1)
    span = np.maximum(high - low, 4 * np.finfo(dtype).eps * magnitude)
    scale = (num_buckets / span).astype(dtype)
    scaled = (values - low.astype(dtype)[rows]) * scale[rows] + dtype.type(1)
    return np.clip(scaled, 0, num_buckets + 1).astype(np.int64)
