"""Exact top-k gallery search with faiss, for galleries too large for a dense distance matrix.

Vectors are stored once: adding new gallery images appends them and never touches (re-embeds or
rebuilds) the old ones. Distances follow :func:`clip_reid.metrics.compute_distance_matrix`
(smaller = closer): cosine = 1 - cosine similarity, dot = minus the dot product, euclidean =
squared Euclidean distance.
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np
import torch

from clip_reid.metrics.distance import as_feature_matrix, check_metric, prepare_features
from clip_reid.metrics.inputs import to_numpy


class FaissGalleryIndex:
    """An exact (flat) faiss index of gallery features keyed by caller-chosen int64 ids."""

    def __init__(self, dim: int, metric: str = "cosine") -> None:
        check_metric(metric)
        if int(dim) < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}.")
        self.dim = int(dim)
        self.metric = metric
        flat = faiss.IndexFlatL2(self.dim) if metric == "euclidean" else faiss.IndexFlatIP(self.dim)
        self._index = faiss.IndexIDMap2(flat)
        self._ids = np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def ids(self) -> np.ndarray:
        """The ids in insertion order (a copy)."""
        return self._ids.copy()

    def add(self, features: Any, ids: Any = None) -> None:
        """Append gallery ``features`` (num_images, dim) under ``ids`` (default: the next
        positions, so ids are gallery row numbers). Ids must be new and unique."""
        vectors = self._prepare(features, "features")
        if ids is None:
            ids = np.arange(len(self), len(self) + len(vectors), dtype=np.int64)
        new_ids = to_numpy(ids, "ids")
        if new_ids.shape != (len(vectors),) or not np.issubdtype(new_ids.dtype, np.integer):
            raise ValueError(
                f"ids must be {len(vectors)} integers (one per feature row), got shape "
                f"{new_ids.shape} and dtype {new_ids.dtype}."
            )
        new_ids = new_ids.astype(np.int64)
        values, counts = np.unique(new_ids, return_counts=True)
        repeated = np.union1d(new_ids[np.isin(new_ids, self._ids)], values[counts > 1])
        if repeated.size:
            raise ValueError(
                f"ids {repeated[:5].tolist()} are already in the index or repeated: every "
                "gallery image needs its own id."
            )
        self._index.add_with_ids(vectors, new_ids)
        self._ids = np.concatenate([self._ids, new_ids])

    def search(
        self, queries: Any, k: int, chunk_size: int = 4096
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` closest gallery items of each query (k is capped at the index size):
        (distances float32, ids int64), both (num_query, k), closest first."""
        if len(self) == 0:
            raise ValueError("The gallery index is empty: add gallery features before searching.")
        if int(k) < 1 or int(chunk_size) < 1:
            raise ValueError(
                f"k and chunk_size must be positive, got k={k}, chunk_size={chunk_size}."
            )
        vectors = self._prepare(queries, "queries")
        k = min(int(k), len(self))
        distances = np.empty((len(vectors), k), dtype=np.float32)
        found = np.empty((len(vectors), k), dtype=np.int64)
        for start in range(0, len(vectors), chunk_size):
            stop = start + chunk_size
            distances[start:stop], found[start:stop] = self._index.search(vectors[start:stop], k)
        if self.metric == "cosine":
            distances = 1 - distances
        elif self.metric == "dot":
            distances = -distances
        return distances, found

    def _prepare(self, features: Any, name: str) -> np.ndarray:
        matrix = as_feature_matrix(features, name)
        if matrix.shape[1] != self.dim:
            raise ValueError(
                f"{name} have dim {matrix.shape[1]} but the index was built for dim {self.dim}: "
                "use features from the same model."
            )
        with torch.no_grad():
            prepared = prepare_features(matrix, self.metric)
        return np.ascontiguousarray(prepared.numpy(), dtype=np.float32)
