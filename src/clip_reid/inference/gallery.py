"""The labelled gallery of open-set identification: features of known people's images, searched
with exact faiss (or, for large galleries, an approximate index: see ann_index), kept with the
fingerprint of the model that embedded them so an updated gallery re-embeds only new images and
a changed model never mixes with stale features."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch

from clip_reid.inference.ann_index import AnnSettings, GallerySearch
from clip_reid.inference.gallery_filter import GalleryFilter
from clip_reid.metrics import FaissGalleryIndex, label_or_unknown, unknown_threshold
from clip_reid.metrics.distance import as_feature_matrix

logger = logging.getLogger(__name__)

STATE_KEYS = ("features", "paths", "pids", "camids", "metric", "fingerprint")
UNKNOWN_CAMID = -1
UNKNOWN_TIME = float("nan")  # a crop with no timestamp: never inside a time window


class Embedder(Protocol):
    """What ``GalleryIndex.build`` needs of a FeatureExtractor."""

    fingerprint: str
    feature_dim: int

    def __call__(self, images: list[Any], camids: Sequence[int] | None = None) -> torch.Tensor: ...


class GalleryIndex:
    """Gallery images (path, pid, camid, feature) in a faiss index; faiss ids are rows.

    ``index``: "auto" (exact, approximate above 100k images), "exact", "ivf", or AnnSettings."""

    def __init__(self, dim: int, metric: str = "cosine", fingerprint: str = "",
                 index: str | AnnSettings = "auto") -> None:
        settings = index if isinstance(index, AnnSettings) else AnnSettings(kind=index)
        self._index = GallerySearch(dim, metric, settings)
        self.fingerprint = fingerprint
        self._features = torch.empty(0, self._index.dim)
        self._paths: list[str] = []
        self._pids: list[int] = []
        self._camids: list[int] = []
        self._timestamps: list[float] = []
        self._text_index: FaissGalleryIndex | None = None  # projection slice, built on demand

    @property
    def dim(self) -> int:
        return self._index.dim

    @property
    def metric(self) -> str:
        return self._index.metric

    @property
    def index_kind(self) -> str:
        """"exact" or "ivf": how search works now (auto switches as the gallery grows)."""
        return self._index.kind

    @property
    def features(self) -> torch.Tensor:
        return self._features

    @property
    def paths(self) -> list[str]:
        return list(self._paths)

    @property
    def pids(self) -> np.ndarray:
        return np.asarray(self._pids, dtype=np.int64)

    @property
    def camids(self) -> np.ndarray:
        return np.asarray(self._camids, dtype=np.int64)

    @property
    def timestamps(self) -> np.ndarray:
        """Seconds (see listing.crop_timestamps); NaN where unknown."""
        return np.asarray(self._timestamps, dtype=np.float64)

    def __len__(self) -> int:
        return len(self._paths)

    @classmethod
    def build(cls, extractor: Embedder, paths: Sequence[Any], pids: Sequence[int],
              camids: Sequence[int] | None = None, metric: str = "cosine",
              previous: GalleryIndex | None = None,
              index: str | AnnSettings = "auto",
              timestamps: Sequence[float] | None = None) -> GalleryIndex:
        """A gallery of ``paths`` that reuses ``previous``'s features of the same paths when they
        come from the same model (fingerprint); only the other images are embedded. Images of
        ``previous`` not in ``paths`` are dropped. ``pids``/``camids`` are always taken from the
        arguments, so relabelling an image needs no re-embedding."""
        paths, pids, camids, timestamps = _checked_rows(paths, pids, camids, timestamps)
        old_rows, old_features = _reusable(previous, extractor.fingerprint)
        reused = [row for row, path in enumerate(paths) if path in old_rows]
        new_rows = [row for row, path in enumerate(paths) if path not in old_rows]
        embedded = (extractor([paths[row] for row in new_rows], [camids[row] for row in new_rows])
                    if new_rows else None)
        if reused or embedded is None:
            features = torch.empty(len(paths), extractor.feature_dim)
            if reused:
                features[reused] = old_features[[old_rows[paths[row]] for row in reused]]
            if embedded is not None:
                features[new_rows] = embedded
        else:  # every image is new: the embedder's tensor is the gallery (no second copy)
            features = embedded
        removed = len(set(old_rows) - set(paths))
        logger.info("Gallery: %d images reused, %d embedded, %d removed (model %s).",
                    len(reused), len(new_rows), removed, extractor.fingerprint)
        gallery = cls(extractor.feature_dim, metric, extractor.fingerprint, index)
        if paths:
            gallery.add(features, paths, pids, camids, timestamps)
        return gallery

    def add(self, features: Any, paths: Sequence[Any], pids: Sequence[int],
            camids: Sequence[int] | None = None,
            timestamps: Sequence[float] | None = None) -> None:
        """Append gallery images; the existing ones are left as they are."""
        matrix = self._append(features, paths, pids, camids, timestamps)
        self._index.add(matrix, self._features)

    def _append(self, features: Any, paths: Sequence[Any], pids: Sequence[int],
                camids: Sequence[int] | None,
                timestamps: Sequence[float] | None) -> torch.Tensor:
        """Checked rows appended to the tables (not to the search index); the new features."""
        paths, pids, camids, timestamps = _checked_rows(paths, pids, camids, timestamps)
        matrix = self._checked_features(features, "gallery features")
        if len(matrix) != len(paths):
            raise ValueError(f"Got {len(matrix)} feature rows for {len(paths)} paths.")
        duplicates = sorted(set(paths) & set(self._paths))
        if duplicates:
            raise ValueError(
                f"{len(duplicates)} path(s) are already in the gallery, e.g. {duplicates[0]}: "
                "rebuild with GalleryIndex.build(..., previous=gallery) to update images."
            )
        # No copy for the first batch: a 1M-image gallery's features are 5 GB.
        self._features = matrix if not len(self) else torch.cat([self._features, matrix])
        self._paths += paths
        self._pids += pids
        self._camids += camids
        self._timestamps += timestamps
        return matrix

    def search(self, features: Any, k: int = 10, threshold: float | None = None,
               where: GalleryFilter | None = None) -> pd.DataFrame:
        """One row per query: ``predicted_pid`` (top-1 pid, or UNKNOWN_PID when ``threshold`` is
        set and the top-1 distance exceeds it), ``known``, ``distance`` (top-1) and the
        list-valued ``topk_pids``, ``topk_paths``, ``topk_camids``, ``topk_distances`` (closest
        first; plain Python lists, so the frame survives JSON). Distances: smaller = closer (see
        FaissGalleryIndex). ``where`` limits the answers to some cameras and/or a time window;
        a filtered search is exact over the matching rows (the approximate index cannot skip
        the others)."""
        if len(self) == 0:
            raise ValueError(
                "the gallery is empty: build it with GalleryIndex.build(extractor, paths, pids) or "
                "add() features before searching."
            )
        queries = self._checked_features(features, "query features")
        if where is not None:
            distances, rows = self._filtered_search(queries, k, where, slice(None), self.metric)
        else:
            distances, rows = self._index.search(queries, k, self._features)
        return self._result_frame(distances, rows, threshold)

    def _filtered_search(self, queries: torch.Tensor, k: int, where: GalleryFilter,
                         columns: slice, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """Exact search over the rows ``where`` keeps (their ``columns``), as gallery rows."""
        rows = np.flatnonzero(where.mask(self.camids, self.timestamps))
        if not rows.size:
            raise ValueError(f"No gallery image matches the filter {where.expression()}: widen "
                             "the cameras or the time window.")
        subset = FaissGalleryIndex(queries.shape[1], metric)
        subset.add(self._features[torch.from_numpy(rows)][:, columns], rows)
        return subset.search(queries, k)

    def search_text(self, text_features: Any, k: int = 10, threshold: float | None = None,
                    where: GalleryFilter | None = None) -> pd.DataFrame:
        """Text-to-image search: ``text_features`` from ``FeatureExtractor.encode_text`` of the
        model that embedded the gallery, compared by cosine with the image PROJECTION part of the
        gallery features (their last columns, as many as the text features have: the test feature is
        concat(final, projection)). Same frame as :meth:`search`; distance = 1 - cosine
        similarity whatever the gallery's metric, and ``threshold`` (None = every answer known)
        is on that scale, which differs from image-to-image distances. ``where``: as in
        :meth:`search`."""
        if len(self) == 0:
            raise ValueError("the gallery is empty: add images before searching it with text.")
        queries = as_feature_matrix(text_features, "text features")
        width = queries.shape[1]
        if not 0 < width < self.dim:
            raise ValueError(
                f"The text features are {width}-d but the gallery holds {self.dim}-d "
                "concat(final, projection) features: embed the text with encode_text of the "
                "FeatureExtractor (checkpoint) that built this gallery."
            )
        if where is not None:
            distances, rows = self._filtered_search(queries, k, where, slice(-width, None),
                                                    "cosine")
            return self._result_frame(distances, rows, threshold)
        index = self._text_index
        if index is None or index.dim != width:
            index = self._text_index = FaissGalleryIndex(width, "cosine")
        if len(index) < len(self):  # the gallery only grows: index the rows added since
            index.add(self._features[len(index):, -width:])
        distances, rows = index.search(queries, k)
        return self._result_frame(distances, rows, threshold)

    def _result_frame(self, distances: np.ndarray, rows: np.ndarray,
                      threshold: float | None) -> pd.DataFrame:
        return answers_frame(np.asarray(self._pids, dtype=np.int64)[rows].tolist(),
                             [[self._paths[row] for row in ranked] for ranked in rows.tolist()],
                             self.camids[rows].tolist(), distances.tolist(), threshold)

    def to_state(self) -> dict[str, Any]:
        """Tensors, lists and strings only, so ``torch.load(weights_only=True)`` reads it back.
        The features tensor is shared with the index, not copied (galleries can be large); a
        trained approximate index is saved too, so loading does not retrain it."""
        return {
            "features": self._features,
            "paths": list(self._paths),
            "pids": torch.tensor(self._pids, dtype=torch.long),
            "camids": torch.tensor(self._camids, dtype=torch.long),
            "timestamps": torch.tensor(self._timestamps, dtype=torch.float64),
            "metric": self.metric,
            "fingerprint": self.fingerprint,
            "index": self._index.settings.kind,
            **self._index.state_entries(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any],
                   index: str | AnnSettings | None = None) -> GalleryIndex:
        """The gallery saved by ``to_state``, searched as ``index`` says (default: as saved).
        States saved before timestamps existed load with unknown times."""
        missing = [key for key in STATE_KEYS if key not in state]
        if missing:
            raise ValueError(
                f"Not a gallery state: keys {missing} are missing (it needs {list(STATE_KEYS)}). "
                "Save galleries with GalleryIndex.to_state()."
            )
        features = as_feature_matrix(state["features"], "features")
        gallery = cls(features.shape[1], state["metric"], state["fingerprint"],
                      state.get("index", "auto") if index is None else index)
        if len(features):
            times = state.get("timestamps")
            gallery._append(features, state["paths"], torch.as_tensor(state["pids"]).tolist(),
                            torch.as_tensor(state["camids"]).tolist(),
                            None if times is None else torch.as_tensor(times).tolist())
            gallery._index.restore(state if index is None else {}, gallery._features)
        return gallery

    def _checked_features(self, features: Any, name: str) -> torch.Tensor:
        matrix = as_feature_matrix(features, name)
        if matrix.shape[1] != self.dim:
            raise ValueError(
                f"The {name} are {matrix.shape[1]}-d but the gallery holds {self.dim}-d features "
                f"(model {self.fingerprint or 'unknown'}): they come from different models or "
                "backbones. Rebuild the gallery with GalleryIndex.build() using the same "
                "FeatureExtractor (checkpoint) as the queries."
            )
        return matrix


def answers_frame(pids: list[list[int]], paths: list[list[str]], camids: list[list[int]],
                  distances: list[list[float]], threshold: float | None) -> pd.DataFrame:
    """The answer frame of every gallery store (see GalleryIndex.search), from each query's
    ranked pids, paths, camids and distances (closest first; at least one per query)."""
    top1_pids = np.asarray([ranked[0] for ranked in pids], dtype=np.int64)
    top1_distances = np.asarray([ranked[0] for ranked in distances], dtype=np.float64)
    if threshold is None:
        predicted, known = top1_pids.astype(object), np.ones(len(pids), dtype=bool)
    else:
        predicted = label_or_unknown(top1_pids, top1_distances, threshold)
        known = ~unknown_threshold(top1_distances, threshold)
    return pd.DataFrame({
        "predicted_pid": predicted,
        "known": known,
        "distance": top1_distances,
        "topk_pids": [[int(pid) for pid in ranked] for ranked in pids],
        "topk_paths": paths,
        "topk_camids": [[int(cam) for cam in ranked] for ranked in camids],
        "topk_distances": [[float(value) for value in ranked] for ranked in distances],
    })


def _checked_rows(paths: Sequence[Any], pids: Sequence[int], camids: Sequence[int] | None,
                  timestamps: Sequence[float] | None,
                  ) -> tuple[list[str], list[int], list[int], list[float]]:
    """Paths as unique strings (they key feature reuse), pids, camids (-1 = unknown) and
    timestamps (NaN = unknown)."""
    paths = [str(path) for path in paths]
    pids = [int(pid) for pid in pids]
    camids = [UNKNOWN_CAMID] * len(paths) if camids is None else [int(cam) for cam in camids]
    times = ([UNKNOWN_TIME] * len(paths) if timestamps is None
             else [float(time) for time in timestamps])
    if not len(paths) == len(pids) == len(camids) == len(times):
        raise ValueError(
            f"Got {len(paths)} paths, {len(pids)} pids, {len(camids)} camids and {len(times)} "
            "timestamps: pass one of each per gallery image."
        )
    if len(set(paths)) != len(paths):
        repeated = pd.Series(paths)[pd.Series(paths).duplicated()].iloc[0]
        raise ValueError(f"Gallery paths must be unique; {repeated} is listed more than once.")
    return paths, pids, camids, times


def _reusable(previous: GalleryIndex | None,
              fingerprint: str) -> tuple[dict[str, int], torch.Tensor]:
    """(path → row, features) of the previous gallery if its features come from this model.
    Stored features are raw (not normalised), so they stay valid when only the metric changes."""
    if previous is None:
        return {}, torch.empty(0)
    if previous.fingerprint != fingerprint:
        logger.info("Gallery: the model changed (fingerprint %s -> %s); re-embedding every image.",
                    previous.fingerprint or "unknown", fingerprint)
        return {}, torch.empty(0)
    return {path: row for row, path in enumerate(previous.paths)}, previous.features
