"""ReID evaluation: CMC / mAP / mINP (Market-1501 protocol), distances, k-reciprocal
re-ranking, faiss top-k retrieval, open-set labels, text reports and figures: pure functions
over arrays, importing nothing else of the project.

Names are imported on first use, so reading the protocol's labels (``metrics.protocol``) does
not load torch, faiss or matplotlib."""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "DISTRACTOR_PID": "protocol",
    "JUNK_PID": "protocol",
    "UNKNOWN_PID": "open_set",
    "FaissGalleryIndex": "retrieval",
    "RankResult": "rank_result",
    "compute_distance_matrix": "distance",
    "evaluate_rank": "rank",
    "evaluate_topk": "topk",
    "format_results": "report",
    "format_test_results": "report",
    "label_or_unknown": "open_set",
    "plot_cmc_curve": "plots",
    "plot_ranked_results": "plots",
    "re_rank": "rerank",
    "top_k_ranked": "topk",
    "unknown_threshold": "open_set",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
