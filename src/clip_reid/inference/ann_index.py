"""Approximate nearest-neighbour search for galleries of millions, and the choice between it and
exact search.

Exact (flat) search reads every gallery vector per query: about 400 queries/s at 100k 1280-d
items on one core, 40 at 1M. The approximate index is faiss IVF with 4-bit PQ fast-scan codes
(``IVF<nlist>,PQ<m>x4fs``): a query visits ``nprobe`` of ``nlist`` k-means cells and scores
their items from 4-bit codes in SIMD registers, then the best ``rerank`` candidates are re-scored
exactly from the gallery's float features, so the distances returned are exact and recall is
that of the candidate list. The codes take ``m / 2`` bytes per item (32 B at 1280-d) beside the
float features the gallery keeps anyway, so the index adds almost no memory. HNSW was not chosen:
at 1M x 1280-d its graph takes far longer to build on two cores and it cannot re-score from the
gallery's own features without a second copy of them.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import faiss
import numpy as np
import torch

from clip_reid.metrics import FaissGalleryIndex
from clip_reid.metrics.distance import check_metric, prepare_features

logger = logging.getLogger(__name__)

INDEX_KINDS = ("auto", "exact", "ivf")
# "auto" switches to IVF here: above it exact search falls under ~1,000 queries/s on two cores.
DEFAULT_APPROXIMATE_ABOVE = 100_000
# Fewer items than this are always searched exactly: IVF-PQ needs 39 training points per k-means
# centroid (faiss warns below), and an exact search over so few is fast anyway.
MIN_TRAIN_SIZE = 2_000
POINTS_PER_CENTROID = 39
MAX_TRAIN_POINTS_PER_LIST = 64  # k-means sample: faiss's default cap of 256 is slow on 2 cores
KMEANS_ITERATIONS = 10
# Retrain when the gallery has grown this much since training, so cells stay balanced.
RETRAIN_GROWTH = 4
NORM_EPS = 1e-12  # as torch.nn.functional.normalize


@dataclass(frozen=True)
class AnnSettings:
    """How the gallery is searched. ``kind``: "exact" (flat), "ivf" (approximate once the gallery
    holds MIN_TRAIN_SIZE items) or "auto" (approximate above ``approximate_above`` items).
    ``nprobe`` cells are visited per query and ``rerank`` candidates re-scored exactly (at least
    k); more of either = higher recall, fewer queries/s."""

    kind: str = "auto"
    approximate_above: int = DEFAULT_APPROXIMATE_ABOVE
    nprobe: int = 16
    rerank: int = 50
    seed: int = 1234

    def __post_init__(self) -> None:
        if self.kind not in INDEX_KINDS:
            raise ValueError(f"index must be one of {INDEX_KINDS}, got {self.kind!r}.")
        for name in ("approximate_above", "nprobe", "rerank"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")

    def wants_approximate(self, size: int) -> bool:
        if self.kind == "exact" or size < MIN_TRAIN_SIZE:
            return False
        return self.kind == "ivf" or size > self.approximate_above


class IvfPqIndex:
    """IVF-PQ fast-scan candidates re-scored exactly from the gallery's features; faiss ids are
    gallery rows (items are only ever appended)."""

    def __init__(self, index: faiss.Index, metric: str, trained_size: int) -> None:
        self._index = index
        self.metric = metric
        self.trained_size = trained_size
        self._norms = np.empty(0, dtype=np.float32)  # of the gallery rows, for cosine re-scoring

    @classmethod
    def trained(cls, features: torch.Tensor, metric: str, seed: int) -> IvfPqIndex:
        """An index trained on a sample of ``features`` (the gallery so far), holding them all."""
        size, dim = features.shape
        nlist = cells_for(size)
        spec = f"IVF{nlist},PQ{pq_subquantizers(dim)}x4fs"
        faiss_metric = faiss.METRIC_L2 if metric == "euclidean" else faiss.METRIC_INNER_PRODUCT
        index = faiss.index_factory(dim, spec, faiss_metric)
        ivf = faiss.extract_index_ivf(index)
        ivf.cp.niter = KMEANS_ITERATIONS
        ivf.cp.seed = seed
        sample = min(size, nlist * MAX_TRAIN_POINTS_PER_LIST)
        rows = np.sort(np.random.default_rng(seed).choice(size, sample, replace=False))
        index.train(_prepared(features[torch.from_numpy(rows)], metric))
        logger.info("Gallery index: %s trained on %d of %d items.", spec, sample, size)
        ann = cls(index, metric, size)
        ann.add(features)
        return ann

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, features: torch.Tensor, chunk: int = 65_536) -> None:
        """Append ``features`` as the next rows (prepared a chunk at a time: bounded memory)."""
        for start in range(0, len(features), chunk):
            block = _prepared(features[start:start + chunk], self.metric)
            first = len(self)
            self._index.add_with_ids(block, np.arange(first, first + len(block), dtype=np.int64))

    def search(self, queries: torch.Tensor, k: int, gallery: torch.Tensor, nprobe: int,
               rerank: int) -> tuple[np.ndarray, np.ndarray]:
        """(distances, rows), both (num_queries, k), closest first, distances exact (as
        FaissGalleryIndex's). ``gallery`` holds the raw features of every row."""
        k = min(int(k), len(self))
        faiss.extract_index_ivf(self._index).nprobe = min(nprobe, self.nlist)
        candidates = min(max(rerank, k), len(self))
        _, found = self._index.search(_prepared(queries, self.metric), candidates)
        return _rescored(queries, found, gallery, self.metric, k, self._gallery_norms(gallery))

    def _gallery_norms(self, gallery: torch.Tensor) -> np.ndarray | None:
        """Row norms for cosine re-scoring, computed once per row (rows are only appended)."""
        if self.metric != "cosine":
            return None
        if len(self._norms) < len(gallery):
            tail = gallery[len(self._norms):].norm(dim=1).clamp_(min=NORM_EPS).numpy()
            self._norms = np.concatenate([self._norms, tail])
        return self._norms

    @property
    def nlist(self) -> int:
        return int(faiss.extract_index_ivf(self._index).nlist)

    def to_bytes(self) -> torch.Tensor:
        """The trained index with its codes, as a uint8 tensor (loadable with weights_only)."""
        return torch.from_numpy(faiss.serialize_index(self._index).copy())

    @classmethod
    def from_bytes(cls, data: torch.Tensor, metric: str, trained_size: int) -> IvfPqIndex:
        return cls(faiss.deserialize_index(data.numpy()), metric, trained_size)


class GallerySearch:
    """Exact or approximate top-k search over a growing gallery, switching to the approximate
    index (and retraining it) as the gallery grows. The gallery's raw features are passed in on
    every call rather than copied: at 1M x 1280-d they are 5 GB."""

    def __init__(self, dim: int, metric: str, settings: AnnSettings) -> None:
        check_metric(metric)
        self.settings = settings
        self.exact: FaissGalleryIndex | None = FaissGalleryIndex(dim, metric)
        self.approximate: IvfPqIndex | None = None
        self.dim, self.metric = int(dim), metric

    @property
    def kind(self) -> str:
        return "exact" if self.approximate is None else "ivf"

    def add(self, new: torch.Tensor, gallery: torch.Tensor) -> None:
        """Index ``new``, the last rows of ``gallery`` (all raw features, ``new`` included)."""
        size = len(gallery)
        if self.approximate is not None and size < RETRAIN_GROWTH * self.approximate.trained_size:
            self.approximate.add(new)
        elif self.settings.wants_approximate(size):
            self.approximate = IvfPqIndex.trained(gallery, self.metric, self.settings.seed)
            self.exact = None
        else:
            self.exact.add(new, np.arange(size - len(new), size, dtype=np.int64))

    def search(self, queries: torch.Tensor, k: int,
               gallery: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        if self.approximate is None:
            return self.exact.search(queries, k)
        return self.approximate.search(queries, k, gallery, self.settings.nprobe,
                                       self.settings.rerank)

    def restore(self, state: dict, gallery: torch.Tensor) -> None:
        """Reuse a saved trained index (``state_entries``) instead of retraining, when it holds
        exactly ``gallery``'s rows; otherwise index ``gallery`` afresh."""
        saved = state.get("ann_index")
        if saved is not None and int(state.get("ann_size", -1)) == len(gallery):
            self.approximate = IvfPqIndex.from_bytes(saved, self.metric,
                                                     int(state["ann_trained_size"]))
            self.exact = None
        elif len(gallery):
            self.add(gallery, gallery)

    def state_entries(self) -> dict:
        """What ``restore`` needs to skip training: nothing for exact search."""
        if self.approximate is None:
            return {}
        return {"ann_index": self.approximate.to_bytes(), "ann_size": len(self.approximate),
                "ann_trained_size": self.approximate.trained_size}


def cells_for(size: int) -> int:
    """About sqrt(size) IVF cells (a power of two), with 39+ items per cell to train on."""
    nlist = 2 ** round(math.log2(max(1.0, math.sqrt(size))))
    return max(1, min(nlist, size // POINTS_PER_CENTROID))


def pq_subquantizers(dim: int) -> int:
    """The most PQ sub-vectors (at most 64, i.e. 32 B/item) that divide ``dim``."""
    return max(m for m in range(1, min(64, dim) + 1) if dim % m == 0)


def _prepared(features: torch.Tensor, metric: str) -> np.ndarray:
    with torch.no_grad():
        prepared = prepare_features(features.float(), metric)
    return np.ascontiguousarray(prepared.numpy(), dtype=np.float32)


def _rescored(queries: torch.Tensor, found: np.ndarray, gallery: torch.Tensor, metric: str,
              k: int, norms: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Exact distances of each query to its candidate rows (-1 = none), the k closest first,
    read in place from the raw gallery features by faiss (no gathered copy). A query with fewer
    than k candidates (its cells held too few items) is searched exactly."""
    valid = found >= 0
    ids = np.ascontiguousarray(np.where(valid, found, 0), dtype=np.int64)
    query = _prepared(queries, metric)  # unit queries for cosine
    base = np.ascontiguousarray(gallery.numpy(), dtype=np.float32)
    scores = np.empty(ids.shape, dtype=np.float32)
    by_idx = faiss.fvec_L2sqr_by_idx if metric == "euclidean" else faiss.fvec_inner_products_by_idx
    by_idx(faiss.swig_ptr(scores), faiss.swig_ptr(query), faiss.swig_ptr(base),
           faiss.swig_ptr(ids), base.shape[1], ids.shape[0], ids.shape[1])
    if metric == "cosine":
        distance = 1 - scores / norms[ids]
    elif metric == "dot":
        distance = -scores
    else:
        distance = scores
    distance[~valid] = np.inf
    order = np.argsort(distance, axis=1, kind="stable")[:, :k]
    best = np.take_along_axis(distance, order, axis=1)
    best_rows = np.take_along_axis(found, order, axis=1)
    short = np.flatnonzero(valid.sum(1) < k)
    if short.size:
        best[short], best_rows[short] = _exact_scan(queries[torch.from_numpy(short)], gallery,
                                                    metric, k)
    return best.astype(np.float32), best_rows


def _exact_scan(queries: torch.Tensor, gallery: torch.Tensor, metric: str, k: int,
                chunk: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k over the whole gallery, a chunk at a time (no second copy of the gallery)."""
    best = np.full((len(queries), k), np.inf, dtype=np.float32)
    best_rows = np.full((len(queries), k), -1, dtype=np.int64)
    for start in range(0, len(gallery), chunk):
        part = FaissGalleryIndex(gallery.shape[1], metric)
        part.add(gallery[start:start + chunk])
        distances, rows = part.search(queries, k)
        merged = np.concatenate([best, distances], axis=1)
        merged_rows = np.concatenate([best_rows, rows + start], axis=1)
        order = np.argsort(merged, axis=1, kind="stable")[:, :k]
        best = np.take_along_axis(merged, order, axis=1)
        best_rows = np.take_along_axis(merged_rows, order, axis=1)
    return best, best_rows
