"""One query/gallery pair ranked under the `evaluation` settings: Market-1501 metrics, per-query
predictions and figures. The pair's labels are checked once (by FeatureSet and here) and every
report reads the same ranking."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from clip_reid.evaluation.feature_set import FeatureSet
from clip_reid.evaluation.settings import EvaluationSettings
from clip_reid.metrics.distance import compute_distance_matrix
from clip_reid.metrics.inputs import RankingLabels
from clip_reid.metrics.plots import plot_cmc_curve, plot_ranked_results
from clip_reid.metrics.protocol import excluded_from_ranking
from clip_reid.metrics.rank import evaluate_rank_labelled
from clip_reid.metrics.rank_result import RankResult
from clip_reid.metrics.rerank import re_rank
from clip_reid.metrics.retrieval import FaissGalleryIndex
from clip_reid.metrics.topk import evaluate_topk_labelled, top_k_ranked_labelled


@dataclass(frozen=True)
class EvaluationOutcome:
    """Everything evaluation reports."""

    result: RankResult
    report: dict[str, Any]
    predictions: pd.DataFrame
    cmc_figure: Figure
    ranked_figure: Figure


class Ranking:
    """The gallery order of every query: dense (all distances, optionally re-ranked) or faiss
    top-k (no dense matrix, for galleries too large for one)."""

    def __init__(self, query: FeatureSet, gallery: FeatureSet,
                 settings: EvaluationSettings) -> None:
        if query.dim != gallery.dim:
            raise ValueError(f"query features are {query.dim}-d but gallery features "
                             f"{gallery.dim}-d: embed both with the same model.")
        if query.fingerprint != gallery.fingerprint:
            raise ValueError(f"query features come from model {query.fingerprint or '<unknown>'}"
                             f", gallery features from {gallery.fingerprint or '<unknown>'}: "
                             "embed both with the same model.")
        self.query, self.gallery, self.settings = query, gallery, settings
        self.labels = RankingLabels(query.pids, gallery.pids, query.camids, gallery.camids)
        self._distmat: np.ndarray | None = None
        self._found: tuple[np.ndarray, np.ndarray] | None = None
        if settings.retrieval == "dense":
            self._distmat = self._dense_distances().numpy()
        else:
            self._found = self._faiss_topk()

    def result(self) -> RankResult:
        """CMC / mAP / mINP under the Market-1501 protocol."""
        settings = self.settings
        if self._found is not None:
            found, _ = self._found
            return evaluate_topk_labelled(found, self.labels, settings.max_rank,
                                          settings.ap_mode)
        return evaluate_rank_labelled(self._distmat, self.labels, settings.max_rank,
                                      settings.ap_mode)

    def top_k(self) -> tuple[np.ndarray, np.ndarray]:
        """(indices, distances) of the first ``top_k`` gallery items each query keeps; -1 and
        NaN pad shorter lists."""
        k = self.settings.top_k
        if self._found is not None:
            found, found_distances = self._found
            return self._protocol_filter(found, found_distances, k)
        indices, _ = top_k_ranked_labelled(self._distmat, self.labels, k)
        rows = np.arange(len(indices))[:, None]
        kept = np.where(indices >= 0, self._distmat[rows, np.maximum(indices, 0)], np.nan)
        return indices, kept

    def distances_of(self, rows: np.ndarray) -> np.ndarray:
        """The distances of the queries at ``rows`` to every gallery item."""
        if self._distmat is not None:
            return self._distmat[rows]
        return compute_distance_matrix(self.query.features[rows], self.gallery.features,
                                       self.settings.distance).numpy()

    def outcome(self) -> EvaluationOutcome:
        """Metrics report, predictions and figures."""
        result = self.result()
        report = {**result.headline(), "num_valid_queries": result.num_valid_queries,
                  "num_skipped_queries": result.num_skipped_queries,
                  "cmc": result.cmc.tolist(), "settings": self.settings.to_dict()}
        indices, distances = self.top_k()
        return EvaluationOutcome(result, report, self._predictions(indices, distances),
                                 plot_cmc_curve(result.cmc), self._ranked_figure(result))

    def _dense_distances(self) -> torch.Tensor:
        query, gallery, rerank = self.query.features, self.gallery.features, self.settings.rerank
        if rerank.enabled:
            return re_rank(query, gallery, rerank.k1, rerank.k2, rerank.lambda_value,
                           metric=rerank.distance, normalize=rerank.normalize)
        return compute_distance_matrix(query, gallery, self.settings.distance)

    def _faiss_topk(self) -> tuple[np.ndarray, np.ndarray]:
        index = FaissGalleryIndex(self.gallery.dim, self.settings.distance)
        index.add(self.gallery.features.numpy())
        distances, indices = index.search(self.query.features.numpy(), self.settings.retrieval_k)
        return indices, distances

    def _protocol_filter(self, indices: np.ndarray, distances: np.ndarray, top_k: int
                         ) -> tuple[np.ndarray, np.ndarray]:
        """Drop same-identity-same-camera and junk items from retrieved lists; keep the first k."""
        labels = self.labels
        safe = np.maximum(indices, 0)
        keep = (indices >= 0) & ~excluded_from_ranking(
            labels.q_pids[:, None], labels.q_camids[:, None], labels.g_pids[safe],
            labels.g_camids[safe])
        order = np.argsort(~keep, axis=1, kind="stable")[:, :top_k]  # kept first, in order
        kept = np.take_along_axis(keep, order, 1)
        return (np.where(kept, np.take_along_axis(indices, order, 1), -1),
                np.where(kept, np.take_along_axis(distances, order, 1), np.nan))

    def _predictions(self, indices: np.ndarray, distances: np.ndarray) -> pd.DataFrame:
        """One row per query: its answer (top-1 gallery identity) and the top-k list."""
        g_pids, g_paths = self.gallery.pids, np.asarray(self.gallery.paths)
        rows = []
        for q, (path, pid) in enumerate(zip(self.query.paths, self.query.pids.tolist(),
                                            strict=True)):
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

    def _ranked_figure(self, result: RankResult) -> Figure:
        """Top-k lists of the worst and the best queries (by AP)."""
        count, top_k = self.settings.ranked_queries, self.settings.top_k
        valid = np.flatnonzero(~np.isnan(result.query_ap))
        order = valid[np.argsort(result.query_ap[valid], kind="stable")]
        chosen = np.unique(np.concatenate([order[:count], order[-count:]]))
        labels = self.labels
        chosen_labels = RankingLabels(labels.q_pids[chosen], labels.g_pids,
                                      labels.q_camids[chosen], labels.g_camids)
        indices, matches = top_k_ranked_labelled(self.distances_of(chosen), chosen_labels,
                                                 top_k)
        titles = [f"AP {result.query_ap[q]:.2f}" for q in chosen]
        return plot_ranked_results([self.query.paths[q] for q in chosen], self.gallery.paths,
                                   indices, matches, top_k=top_k, query_titles=titles)
