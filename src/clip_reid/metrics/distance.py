"""Query x gallery distance matrices, smaller = closer for every metric.

``euclidean`` is the SQUARED Euclidean distance, as the official CLIP-ReID / TransReID
evaluators compute it (same ranking as the plain distance, cheaper, and what re-ranking expects).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

METRICS = ("cosine", "dot", "euclidean")


def check_metric(metric: str, allowed: tuple[str, ...] = METRICS) -> None:
    if metric not in allowed:
        raise ValueError(f"metric must be one of {allowed}, got {metric!r}.")


def as_feature_matrix(features: Any, name: str) -> Tensor:
    """A 2-d float32 CPU tensor of features (tensors or arrays accepted)."""
    tensor = torch.as_tensor(features).detach()
    if tensor.ndim != 2:
        raise ValueError(f"{name} must be 2-d (num_images, dim), got shape {tuple(tensor.shape)}.")
    return tensor.to(device="cpu", dtype=torch.float32)


def prepare_features(features: Tensor, metric: str) -> Tensor:
    """L2-normalise for cosine (so cosine similarity is a dot product); others unchanged."""
    if metric == "cosine":
        return torch.nn.functional.normalize(features, dim=1)
    return features


def distances_from_prepared(
    query: Tensor, gallery: Tensor, metric: str, gallery_sq_norms: Tensor | None = None
) -> Tensor:
    """Distances between already prepared features (see :func:`prepare_features`);
    ``gallery_sq_norms`` saves recomputing the gallery's squared norms chunk after chunk."""
    if metric == "cosine":
        return (query @ gallery.T).neg_().add_(1)
    if metric == "dot":
        return (query @ gallery.T).neg_()
    if gallery_sq_norms is None:
        gallery_sq_norms = gallery.pow(2).sum(1)
    squared = torch.addmm(
        gallery_sq_norms.expand(query.shape[0], -1), query, gallery.T, beta=1, alpha=-2
    )
    return squared.add_(query.pow(2).sum(1, keepdim=True)).clamp_(min=0)


def compute_distance_matrix(
    query_features: Any, gallery_features: Any, metric: str = "cosine", chunk_size: int = 1024
) -> Tensor:
    """(num_query, num_gallery) float32 distances, computed ``chunk_size`` queries at a time.

    cosine = 1 - cosine similarity of the L2-normalised features; dot = minus the dot product;
    euclidean = squared Euclidean distance.
    """
    check_metric(metric)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}.")
    query = prepare_features(as_feature_matrix(query_features, "query_features"), metric)
    gallery = prepare_features(as_feature_matrix(gallery_features, "gallery_features"), metric)
    if query.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"query features have dim {query.shape[1]} but gallery features {gallery.shape[1]}: "
            "extract both with the same model."
        )
    out = torch.empty(query.shape[0], gallery.shape[0], dtype=torch.float32)
    with torch.no_grad():
        gallery_sq_norms = gallery.pow(2).sum(1)
        for start in range(0, query.shape[0], chunk_size):
            stop = start + chunk_size
            out[start:stop] = distances_from_prepared(
                query[start:stop], gallery, metric, gallery_sq_norms
            )
    return out
