"""Text reports of a :class:`RankResult`, in the exact line formats logs and users compare.

``format_results`` follows the official CLIP-ReID log::

    Validation Results
    mAP: 89.8%
    mINP: 60.1%
    CMC curve, Rank-1  :95.7%

``format_test_results`` follows the seed project's ``Test Results - Rank-1: 95.19%`` lines.
"""

from __future__ import annotations

from collections.abc import Sequence

from clip_reid.metrics.rank_result import RankResult


def format_results(result: RankResult, ranks: Sequence[int] = (1, 5, 10)) -> str:
    """The "Validation Results" block: percentages with one decimal, one item per line."""
    lines = ["Validation Results", f"mAP: {result.mAP:.1%}", f"mINP: {result.mINP:.1%}"]
    lines += [f"CMC curve, Rank-{k:<3}:{result.rank(k):.1%}" for k in ranks]
    return "\n".join(lines)


def format_test_results(result: RankResult, ranks: Sequence[int] = (1, 5, 10)) -> str:
    """The "Test Results - ..." lines: Rank-k then mAP and mINP, two decimals."""
    items = [(f"Rank-{k}", result.rank(k)) for k in ranks]
    items += [("mAP", result.mAP), ("mINP", result.mINP)]
    return "\n".join(f"Test Results - {name}: {value:.2%}" for name, value in items)
