"""Evaluation ranking: query and gallery features in, Market-1501 metrics, per-query
predictions and figures out, under one frozen settings object (the `evaluation` block)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from clip_reid.data.settings import DatasetRef
from clip_reid.engine_settings import EmbeddingEngineSettings
from clip_reid.metrics.distance import METRICS, compute_distance_matrix
from clip_reid.metrics.inputs import AP_MODES
from clip_reid.metrics.plots import plot_cmc_curve, plot_ranked_results
from clip_reid.metrics.protocol import excluded_from_ranking
from clip_reid.metrics.rank import evaluate_rank
from clip_reid.metrics.rank_result import RankResult
from clip_reid.metrics.rerank import re_rank
from clip_reid.metrics.rerank_inputs import RERANK_METRICS
from clip_reid.metrics.retrieval import FaissGalleryIndex
from clip_reid.metrics.topk import evaluate_topk, top_k_ranked
from clip_reid.settings_base import Settings, setting

DTYPES = ("fp32", "bf16")
RETRIEVALS = ("dense", "faiss")
REPORTED = ("rank1", "rank5", "rank10", "mAP", "mINP")


@dataclass(frozen=True)
class RerankSettings(Settings):
    """k-reciprocal re-ranking (Zhong et al. 2017)."""

    enabled: bool = False
    k1: int = setting(20, ge=1)
    k2: int = setting(6, ge=1)
    lambda_value: float = setting(0.3, ge=0.0, le=1.0)
    metric: str = setting("euclidean", choices=RERANK_METRICS)
    normalize: bool = True  # L2-normalise first, as the official evaluator does


@dataclass(frozen=True)
class TextRetrievalSettings(Settings):
    """Text -> image retrieval: test identities' sentences as queries over the gallery."""

    enabled: bool = True
    sources: tuple[str, ...] | None = ("attributes",)  # caption sources; null = every source
    truncate: bool = True  # sentences over 75 BPE tokens keep their first 75 (as CLIP does)
    chance_repeats: int = setting(10, ge=1)  # random rankings averaged for the chance level


@dataclass(frozen=True)
class EvaluationSettings(Settings):
    """The `evaluation` block."""

    batch_size: int = setting(64, ge=1)
    flip: bool = False  # average the features of the image and its mirror
    dtype: str = setting("fp32", choices=DTYPES)
    distance: str = setting("cosine", choices=METRICS)
    rerank: RerankSettings = setting(default_factory=RerankSettings)
    retrieval: str = setting("dense", choices=RETRIEVALS)
    retrieval_k: int = setting(100, ge=1)  # with faiss: gallery items each query retrieves
    max_rank: int = setting(50, ge=10)  # the CMC's length; reports go up to Rank-10
    ap_mode: str = setting("standard", choices=AP_MODES)
    top_k: int = setting(10, ge=1)  # gallery items listed per query (predictions, figure)
    ranked_queries: int = setting(4, ge=1)  # worst and best queries drawn in the figure
    device: str | None = None  # feature extraction device; None = the trainer's accelerator
    embedding: EmbeddingEngineSettings = setting(default_factory=EmbeddingEngineSettings)
    text_retrieval: TextRetrievalSettings = setting(default_factory=TextRetrievalSettings)
    dataset: DatasetRef = setting(default_factory=DatasetRef)


@dataclass(frozen=True)
class EvaluationOutcome:
    """Everything evaluation reports."""

    result: RankResult
    report: dict[str, Any]
    predictions: pd.DataFrame
    cmc_figure: Figure
    ranked_figure: Figure


def _distances(query: dict, gallery: dict, settings: EvaluationSettings) -> torch.Tensor:
    rerank = settings.rerank
    if rerank.enabled:
        return re_rank(query["features"], gallery["features"], rerank.k1, rerank.k2,
                       rerank.lambda_value, metric=rerank.metric, normalize=rerank.normalize)
    return compute_distance_matrix(query["features"], gallery["features"], settings.distance)


def _faiss_topk(query: dict, gallery: dict, settings: EvaluationSettings):
    """Top-k retrieval without a dense distance matrix (for galleries too large for one)."""
    index = FaissGalleryIndex(gallery["features"].shape[1], settings.distance)
    index.add(gallery["features"].numpy())
    return index.search(query["features"].numpy(), settings.retrieval_k)


def _protocol_filter(indices: np.ndarray, distances: np.ndarray, query: dict, gallery: dict,
                     top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Drop same-identity-same-camera and junk items from retrieved lists; keep the first k."""
    q_pids, q_cams = query["pids"].numpy()[:, None], query["camids"].numpy()[:, None]
    safe = np.maximum(indices, 0)
    g_pids, g_cams = gallery["pids"].numpy()[safe], gallery["camids"].numpy()[safe]
    keep = (indices >= 0) & ~excluded_from_ranking(q_pids, q_cams, g_pids, g_cams)
    order = np.argsort(~keep, axis=1, kind="stable")[:, :top_k]  # kept items first, in order
    kept = np.take_along_axis(keep, order, 1)
    return (np.where(kept, np.take_along_axis(indices, order, 1), -1),
            np.where(kept, np.take_along_axis(distances, order, 1), np.nan))


def _predictions(query: dict, gallery: dict, indices: np.ndarray, distances: np.ndarray
                 ) -> pd.DataFrame:
    """One row per query: its answer (top-1 gallery identity) and the top-k list."""
    g_pids, g_paths = gallery["pids"].numpy(), np.asarray(gallery["paths"])
    rows = []
    for q, (path, pid) in enumerate(zip(query["paths"], query["pids"].tolist(), strict=True)):
        kept = indices[q][indices[q] >= 0]
        rows.append({
            "query_path": path,
            "query_pid": pid,
            "predicted_pid": int(g_pids[kept[0]]) if len(kept) else None,
            "distance": float(distances[q][0]) if len(kept) else None,
            "topk_pids": " ".join(str(int(p)) for p in g_pids[kept]),
            "topk_distances": " ".join(f"{d:.4f}" for d in distances[q][: len(kept)]),
            "topk_paths": " ".join(g_paths[kept]),
        })
    return pd.DataFrame(rows)


def _ranked_figure(query: dict, gallery: dict, result: RankResult, distances_of,
                   count: int, top_k: int) -> Figure:
    """Top-k lists of the worst and the best queries (by AP)."""
    valid = np.flatnonzero(~np.isnan(result.query_ap))
    order = valid[np.argsort(result.query_ap[valid], kind="stable")]
    chosen = np.unique(np.concatenate([order[:count], order[-count:]]))
    indices, matches = top_k_ranked(distances_of(chosen), query["pids"][chosen], gallery["pids"],
                                    query["camids"][chosen], gallery["camids"], k=top_k)
    titles = [f"AP {result.query_ap[q]:.2f}" for q in chosen]
    return plot_ranked_results([query["paths"][q] for q in chosen], gallery["paths"], indices,
                               matches, top_k=top_k, query_titles=titles)


def rank_query_gallery(query: dict[str, Any], gallery: dict[str, Any],
                       settings: EvaluationSettings) -> EvaluationOutcome:
    """CMC / mAP / mINP under the Market-1501 protocol, predictions and figures. ``query`` and
    ``gallery`` hold ``features``, ``pids``, ``camids`` and ``paths``."""
    q, g = query, gallery
    labels = (q["pids"], g["pids"], q["camids"], g["camids"])
    if settings.retrieval == "faiss":
        found_distances, found = _faiss_topk(q, g, settings)
        result = evaluate_topk(found, *labels, max_rank=settings.max_rank,
                               ap_mode=settings.ap_mode)
        indices, top_distances = _protocol_filter(found, found_distances, q, g, settings.top_k)

        def distances_of(rows: np.ndarray) -> np.ndarray:
            return compute_distance_matrix(q["features"][rows], g["features"],
                                           settings.distance).numpy()
    else:
        distmat = _distances(q, g, settings).numpy()
        result = evaluate_rank(distmat, *labels, max_rank=settings.max_rank,
                               ap_mode=settings.ap_mode)
        indices, _ = top_k_ranked(distmat, *labels, k=settings.top_k)
        rows = np.arange(len(indices))[:, None]
        top_distances = np.where(indices >= 0, distmat[rows, np.maximum(indices, 0)], np.nan)

        def distances_of(rows: np.ndarray) -> np.ndarray:
            return distmat[rows]
    report = {
        "rank1": result.rank(1), "rank5": result.rank(5), "rank10": result.rank(10),
        "mAP": result.mAP, "mINP": result.mINP, "num_valid_queries": result.num_valid_queries,
        "num_skipped_queries": result.num_skipped_queries, "cmc": result.cmc.tolist(),
        "settings": settings.to_dict(),
    }
    ranked = _ranked_figure(q, g, result, distances_of, settings.ranked_queries, settings.top_k)
    return EvaluationOutcome(result, report, _predictions(q, g, indices, top_distances),
                             plot_cmc_curve(result.cmc), ranked)

