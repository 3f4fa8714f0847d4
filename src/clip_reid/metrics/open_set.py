"""Open-set labelling: a query whose nearest gallery image is too far is "unknown" rather than
forced onto the identity of a stranger."""

from __future__ import annotations

from typing import Any

import numpy as np

from clip_reid.metrics.inputs import to_numpy

UNKNOWN_PID = "unknown"
"""The one answer for "not anyone in the gallery": in GalleryIndex search frames, the inference
CSV, the served model's JSON and the search page alike (a pid can be any integer, even -1)."""


def unknown_threshold(top1_distances: Any, threshold: float) -> np.ndarray:
    """True where the top-1 distance is greater than ``threshold`` (smaller = closer)."""
    distances = to_numpy(top1_distances, "top1_distances").astype(np.float64)
    if distances.ndim != 1:
        raise ValueError(f"top1_distances must be 1-d, got shape {distances.shape}.")
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}.")
    return distances > threshold


def label_or_unknown(top1_labels: Any, top1_distances: Any, threshold: float) -> np.ndarray:
    """The top-1 gallery label of each query, or UNKNOWN_PID where it is too far (an object
    array of Python ints and UNKNOWN_PID, so it survives JSON)."""
    labels = to_numpy(top1_labels, "top1_labels")
    unknown = unknown_threshold(top1_distances, threshold)
    if labels.shape != unknown.shape:
        raise ValueError(
            f"top1_labels has shape {labels.shape} but top1_distances {unknown.shape}: "
            "pass one label and one distance per query."
        )
    return np.where(unknown, UNKNOWN_PID, labels.astype(object))
