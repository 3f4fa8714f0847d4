"""Nodes of evaluation: embed query and gallery, score them, and explain the ranking."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from clip_reid.data.transforms import build_test_transform
from clip_reid.metrics import (
    FaissGalleryIndex,
    RankResult,
    compute_distance_matrix,
    evaluate_rank,
    evaluate_topk,
    format_results,
    format_test_results,
    plot_cmc_curve,
    plot_ranked_results,
    re_rank,
    top_k_ranked,
)
from clip_reid.modeling import ClipReidModel, load_reid_model, reid_checkpoint
from clip_reid.modeling.backbone import is_finetuned, load_clip_backbone
from clip_reid.modeling.features import extract_features, recalibrate_batch_norm
from clip_reid.modeling.text_tower import text_tower_state
from clip_reid.pipelines.model_params import eval_transform, normalization, reid_config

logger = logging.getLogger(__name__)


def untrained_model(
    image_index: pd.DataFrame, clip_backbone: dict[str, Any], model: dict[str, Any]
) -> dict[str, Any]:
    """The baseline: the CLIP image encoder stages 1 and 2 start from, before ReID training."""
    train = image_index[image_index["split"] == "train"]
    config = reid_config(model, max(int(train["label"].max()) + 1, 1), 0)
    clip = load_clip_backbone(clip_backbone, config.clip)
    reid_model = ClipReidModel(config, clip)
    # Random BN statistics would collapse every feature (a tuned backbone has trained ones).
    if config.clip.weights == "random" and not is_finetuned(clip_backbone):
        recalibrate_batch_norm(reid_model.image_encoder, train, eval_transform(model))
    mean, std = normalization(model)
    return reid_checkpoint(reid_model.eval(), normalization={"mean": mean, "std": std},
                           text_tower=text_tower_state(clip))


def _embed(model: torch.nn.Module, frame: pd.DataFrame, transform, evaluation: dict[str, Any],
           use_cameras: bool, name: str) -> dict[str, Any]:
    features = extract_features(
        model, frame, transform, batch_size=evaluation.get("batch_size", 64),
        flip=evaluation.get("flip", False), dtype=evaluation.get("dtype", "fp32"),
        use_cameras=use_cameras, num_workers=evaluation.get("num_workers", 0), description=name,
    )
    return {"features": features, "pids": torch.as_tensor(frame["pid"].to_numpy()),
            "camids": torch.as_tensor(frame["camid"].to_numpy()), "paths": frame["path"].tolist()}


def extract_query_gallery_features(
    reid_model: dict[str, Any], image_index: pd.DataFrame, evaluation: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Test features of the query and gallery splits, with the model's own test transform."""
    model = load_reid_model(reid_model)
    config = model.config
    norm = reid_model.get("normalization")
    if norm is None:
        raise ValueError("The model checkpoint lacks its pixel normalisation; re-train it.")
    transform = build_test_transform(config.image_size, norm["mean"], norm["std"])
    start = time.perf_counter()
    outputs = tuple(
        _embed(model, image_index[image_index["split"] == split].reset_index(drop=True),
               transform, evaluation, config.num_cameras > 0, split)
        for split in ("query", "gallery")
    )
    count = sum(len(o["paths"]) for o in outputs)
    logger.info("Embedded %d images in %.1f s (%s)", count, time.perf_counter() - start,
                evaluation.get("dtype", "fp32"))
    return outputs


def _distances(query: dict, gallery: dict, evaluation: dict[str, Any]) -> torch.Tensor:
    rerank = evaluation.get("rerank") or {}
    if rerank.get("enabled", False):
        return re_rank(query["features"], gallery["features"], rerank.get("k1", 20),
                       rerank.get("k2", 6), rerank.get("lambda_value", 0.3),
                       metric=rerank.get("metric", "euclidean"))
    return compute_distance_matrix(query["features"], gallery["features"],
                                   evaluation.get("distance", "cosine"))


def _faiss_topk(query: dict, gallery: dict, evaluation: dict[str, Any]):
    """Top-k retrieval without a dense distance matrix (for galleries too large for one)."""
    metric = evaluation.get("distance", "cosine")
    index = FaissGalleryIndex(gallery["features"].shape[1], metric)
    index.add(gallery["features"].numpy())
    return index.search(query["features"].numpy(), evaluation.get("retrieval_k", 100))


def _protocol_filter(indices: np.ndarray, distances: np.ndarray, query: dict, gallery: dict,
                     top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Drop same-identity-same-camera and junk items from retrieved lists; keep the first k."""
    q_pids, q_cams = query["pids"].numpy()[:, None], query["camids"].numpy()[:, None]
    safe = np.maximum(indices, 0)
    g_pids, g_cams = gallery["pids"].numpy()[safe], gallery["camids"].numpy()[safe]
    keep = (indices >= 0) & ~((g_pids == q_pids) & (g_cams == q_cams)) & (g_pids != -1)
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
                   count: int) -> Figure:
    """Top-10 lists of the worst and the best queries (by AP)."""
    valid = np.flatnonzero(~np.isnan(result.query_ap))
    order = valid[np.argsort(result.query_ap[valid], kind="stable")]
    chosen = np.unique(np.concatenate([order[:count], order[-count:]]))
    indices, matches = top_k_ranked(distances_of(chosen), query["pids"][chosen], gallery["pids"],
                                    query["camids"][chosen], gallery["camids"], k=10)
    titles = [f"AP {result.query_ap[q]:.2f}" for q in chosen]
    return plot_ranked_results([query["paths"][q] for q in chosen], gallery["paths"], indices,
                               matches, top_k=10, query_titles=titles)


def evaluate_features(
    query_features: dict[str, Any], gallery_features: dict[str, Any],
    evaluation: dict[str, Any],
) -> tuple[dict, dict, pd.DataFrame, Figure, Figure]:
    """CMC / mAP / mINP under the Market-1501 protocol, predictions and figures."""
    q, g = query_features, gallery_features
    labels = (q["pids"], g["pids"], q["camids"], g["camids"])
    max_rank, ap_mode = evaluation.get("max_rank", 50), evaluation.get("ap_mode", "standard")
    top_k = evaluation.get("top_k", 10)
    metric = evaluation.get("distance", "cosine")
    if evaluation.get("retrieval", "dense") == "faiss":
        found_distances, found = _faiss_topk(q, g, evaluation)
        result = evaluate_topk(found, *labels, max_rank=max_rank, ap_mode=ap_mode)
        indices, top_distances = _protocol_filter(found, found_distances, q, g, top_k)

        def distances_of(rows: np.ndarray) -> np.ndarray:
            return compute_distance_matrix(q["features"][rows], g["features"], metric).numpy()
    else:
        distmat = _distances(q, g, evaluation).numpy()
        result = evaluate_rank(distmat, *labels, max_rank=max_rank, ap_mode=ap_mode)
        indices, _ = top_k_ranked(distmat, *labels, k=top_k)
        rows = np.arange(len(indices))[:, None]
        top_distances = np.where(indices >= 0, distmat[rows, np.maximum(indices, 0)], np.nan)

        def distances_of(rows: np.ndarray) -> np.ndarray:
            return distmat[rows]
    print(format_test_results(result), flush=True)
    logger.info("\n%s", format_results(result))
    report = {
        "rank1": result.rank(1), "rank5": result.rank(5), "rank10": result.rank(10),
        "mAP": result.mAP, "mINP": result.mINP, "num_valid_queries": result.num_valid_queries,
        "num_skipped_queries": result.num_skipped_queries, "cmc": result.cmc.tolist(),
        "settings": {k: v for k, v in evaluation.items() if k != "num_workers"},
    }
    mlflow_metrics = {name: {"value": float(report[name]), "step": 0}
                      for name in ("rank1", "rank5", "rank10", "mAP", "mINP")}
    predictions = _predictions(q, g, indices, top_distances)
    cmc_figure = plot_cmc_curve(result.cmc)
    ranked = _ranked_figure(q, g, result, distances_of, evaluation.get("ranked_queries", 4))
    return report, mlflow_metrics, predictions, cmc_figure, ranked
