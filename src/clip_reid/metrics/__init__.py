"""ReID evaluation: CMC / mAP / mINP (Market-1501 protocol), distances, k-reciprocal
re-ranking, faiss top-k retrieval, open-set labels, text reports and figures (no kedro)."""

from clip_reid.metrics.distance import compute_distance_matrix
from clip_reid.metrics.open_set import UNKNOWN_PID, label_or_unknown, unknown_threshold
from clip_reid.metrics.plots import plot_cmc_curve, plot_ranked_results
from clip_reid.metrics.protocol import DISTRACTOR_PID, JUNK_PID
from clip_reid.metrics.rank import evaluate_rank
from clip_reid.metrics.rank_result import RankResult
from clip_reid.metrics.report import format_results, format_test_results
from clip_reid.metrics.rerank import re_rank
from clip_reid.metrics.retrieval import FaissGalleryIndex
from clip_reid.metrics.topk import evaluate_topk, top_k_ranked

__all__ = [
    "DISTRACTOR_PID",
    "JUNK_PID",
    "UNKNOWN_PID",
    "FaissGalleryIndex",
    "RankResult",
    "compute_distance_matrix",
    "evaluate_rank",
    "evaluate_topk",
    "format_results",
    "format_test_results",
    "label_or_unknown",
    "plot_cmc_curve",
    "plot_ranked_results",
    "re_rank",
    "top_k_ranked",
    "unknown_threshold",
]
