"""The result of a ranking evaluation and the per-query formulas every evaluator shares.

Every evaluator reduces a query to the 1-based ranks of its true matches among the gallery items
the protocol keeps; CMC, AP and INP follow from those ranks alone, so they are written once here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HEADLINE_METRICS = ("rank1", "rank5", "rank10", "mAP", "mINP")


@dataclass(frozen=True)
class RankResult:
    """CMC (fractions, ``cmc[k]`` = rank-(k+1) accuracy), mAP and mINP over the valid queries.

    ``query_ap`` holds each query's AP in query order (NaN for a skipped query) so a caller can
    pick its best and worst queries for display.
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid_queries: int
    num_skipped_queries: int
    query_ap: np.ndarray

    def rank(self, k: int) -> float:
        """Rank-k accuracy (1-based ``k``)."""
        if not 1 <= k <= len(self.cmc):
            raise ValueError(
                f"rank {k} is outside the CMC curve (1..{len(self.cmc)}): the curve stops at "
                "min(max_rank, gallery size); Rank-10 needs a gallery of at least 10 images."
            )
        return float(self.cmc[k - 1])

    def headline(self) -> dict[str, float]:
        """The reported numbers (fractions), keyed as HEADLINE_METRICS. A curve shorter than 10
        (a gallery of fewer images) has reached its final value, which is then Rank-5/10."""
        last = len(self.cmc)
        return {"rank1": self.rank(1), "rank5": self.rank(min(5, last)),
                "rank10": self.rank(min(10, last)), "mAP": self.mAP, "mINP": self.mINP}


def per_query_scores(
    hit_ranks: np.ndarray, num_relevant: np.ndarray, ap_mode: str
) -> tuple[np.ndarray, np.ndarray]:
    """AP and INP of each query from its sorted hit ranks.

    ``hit_ranks`` is (num_queries, width): row i holds the 1-based ranks of query i's matches in
    increasing order, padded with ``inf`` (a match never retrieved also counts as ``inf``).
    ``num_relevant`` is each query's number of true matches in the whole gallery.

    ``standard`` AP is torchreid's non-interpolated AP, mean over matches of precision at the
    match. ``market_matlab`` AP is the official Market-1501 MATLAB code (compute_AP.m): the
    trapezoid rule on the precision-recall curve, each match adding
    (1/n) * (precision before it + precision at it) / 2, with precision 1 before rank 1.
    INP (Ye et al., AGW) is n / rank of the hardest match, 0 when that match was not retrieved.
    """
    width = hit_ranks.shape[1]
    order = np.arange(1, width + 1, dtype=np.float64)
    found = np.isfinite(hit_ranks)
    precision = np.where(found, order / hit_ranks, 0.0)
    if ap_mode == "standard":
        contributions = precision
    else:
        previous = np.where(
            hit_ranks > 1, (order - 1) / np.maximum(hit_ranks - 1, 1), 1.0
        )
        contributions = np.where(found, (previous + precision) / 2, 0.0)
    denominator = np.maximum(num_relevant, 1)
    ap = contributions.sum(axis=1) / denominator
    hardest = np.full(len(hit_ranks), np.inf)
    retrieved_all = (num_relevant >= 1) & (num_relevant <= width)
    rows = np.flatnonzero(retrieved_all)
    hardest[rows] = hit_ranks[rows, num_relevant[rows] - 1]
    inp = np.where(np.isfinite(hardest), num_relevant / hardest, 0.0)
    return ap, inp


def cmc_counts(first_hit_ranks: np.ndarray, max_rank: int) -> np.ndarray:
    """How many queries have their first match at or before each rank 1..max_rank."""
    clipped = np.where(np.isfinite(first_hit_ranks), first_hit_ranks, max_rank + 1)
    clipped = np.minimum(clipped, max_rank + 1).astype(np.int64)
    return np.cumsum(np.bincount(clipped, minlength=max_rank + 2)[1 : max_rank + 1])


class ScoreAccumulator:
    """Collects per-chunk scores and turns them into a :class:`RankResult`."""

    def __init__(self, num_queries: int, max_rank: int) -> None:
        self.max_rank = max_rank
        self.cmc_hits = np.zeros(max_rank, dtype=np.int64)
        self.query_ap = np.full(num_queries, np.nan)
        self.query_inp = np.full(num_queries, np.nan)

    def add(
        self, rows: slice, hit_ranks: np.ndarray, num_relevant: np.ndarray, ap_mode: str
    ) -> None:
        """Score queries ``rows``; those with ``num_relevant == 0`` are skipped (left NaN)."""
        valid = num_relevant > 0
        ap, inp = per_query_scores(hit_ranks[valid], num_relevant[valid], ap_mode)
        indices = np.arange(rows.start, rows.stop)[valid]
        self.query_ap[indices] = ap
        self.query_inp[indices] = inp
        first = hit_ranks[valid, 0] if hit_ranks.shape[1] else np.full(valid.sum(), np.inf)
        self.cmc_hits += cmc_counts(first, self.max_rank)

    def result(self) -> RankResult:
        valid = ~np.isnan(self.query_ap)
        num_valid = int(valid.sum())
        if num_valid == 0:
            raise ValueError(
                "No query has a true match in the gallery (after removing same-camera images "
                "of the same identity and junk): check that query and gallery pids/camids "
                "come from the same dataset split."
            )
        return RankResult(
            cmc=self.cmc_hits / num_valid,
            mAP=float(self.query_ap[valid].mean()),
            mINP=float(self.query_inp[valid].mean()),
            num_valid_queries=num_valid,
            num_skipped_queries=int(len(self.query_ap) - num_valid),
            query_ap=self.query_ap,
        )
