"""One gallery, two stores: faiss in the process (GalleryIndex, saved whole as ``gallery_index``)
or a Milvus collection (``gallery_index`` then saves a small reference to it: uri, collection,
model fingerprint, size). The searchers (identify, text search, the served model, the page)
open either through ``open_gallery`` and get the same answer frame."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pandas as pd
import torch

from clip_reid.inference.gallery import GalleryIndex
from clip_reid.inference.gallery_filter import GalleryFilter
from clip_reid.inference.milvus_gallery import MilvusGallery
from clip_reid.inference.serving import ServingSettings, common_folder, shown_paths

logger = logging.getLogger(__name__)

TOKEN_VARIABLE = "CLIP_REID_MILVUS_TOKEN"  # the served model's token for a secured cluster
EMBED_CHUNK = 4096  # images embedded and upserted at a time: bounded memory at any gallery size

_opened: dict[tuple[str, str], MilvusGallery] = {}


class Gallery(Protocol):
    """What searchers need of a gallery store (GalleryIndex and MilvusGallery both have it)."""

    fingerprint: str

    def __len__(self) -> int: ...

    def search(self, features: Any, k: int = 10, threshold: float | None = None,
               where: GalleryFilter | None = None) -> pd.DataFrame: ...

    def search_text(self, text_features: Any, k: int = 10, threshold: float | None = None,
                    where: GalleryFilter | None = None) -> pd.DataFrame: ...


@dataclass(frozen=True)
class MilvusReference:
    """What ``gallery_index`` saves for a Milvus gallery: where the collection is, which model
    embedded it, its size, and the common folder of its paths (it holds no path list)."""

    uri: str
    collection: str
    fingerprint: str
    metric: str
    size: int
    path_root: str | None

    def to_state(self) -> dict[str, Any]:
        return {"store": "milvus", **asdict(self)}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], source: str) -> MilvusReference:
        fields = ("uri", "collection", "fingerprint", "metric", "size", "path_root")
        missing = [key for key in fields if key not in state]
        if missing:
            raise ValueError(f"{source} is not a gallery store reference: keys {missing} are "
                             "missing. Re-run kedro run --pipeline inference.")
        return cls(**{key: state[key] for key in fields})


SavedGallery = GalleryIndex | MilvusReference  # what the gallery_index catalog entry holds


def saved_gallery(state: Any, source: str = "gallery_index") -> SavedGallery:
    """The ``gallery_index`` artifact a saved state describes (the catalog's reader)."""
    if isinstance(state, Mapping) and state.get("store") == "milvus":
        return MilvusReference.from_state(state, source)
    try:
        return GalleryIndex.from_state(state)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from error


class StoreEmbedder(Protocol):
    fingerprint: str
    feature_dim: int
    projection_dim: int

    def __call__(self, images: list[Any], camids: list[int] | None = None) -> torch.Tensor: ...


@runtime_checkable
class StreamingEmbedder(Protocol):
    """An embedder whose results never gather in this process (Ray with ``output: parquet``):
    it yields a gallery frame's rows, tagged with their position ``row``, in bounded chunks."""

    fingerprint: str
    feature_dim: int
    projection_dim: int

    def stream(self, images: pd.DataFrame) -> Iterator[tuple[pd.DataFrame, torch.Tensor]]: ...


def embedded_chunks(extractor: StoreEmbedder | StreamingEmbedder,
                    images: pd.DataFrame) -> Iterator[tuple[pd.DataFrame, torch.Tensor]]:
    """``images`` (path, pid, camid, timestamp) with their features, a bounded chunk at a time
    (EMBED_CHUNK images per call of an in-memory embedder; a streaming one's own chunks)."""
    if isinstance(extractor, StreamingEmbedder):
        yield from extractor.stream(images)
        return
    for start in range(0, len(images), EMBED_CHUNK):
        part = images.iloc[start:start + EMBED_CHUNK]
        yield part, extractor(part["path"].tolist(), part["camid"].tolist())


def embed_into_milvus(extractor: StoreEmbedder | StreamingEmbedder, images: pd.DataFrame,
                      gallery: MilvusGallery, metric: str) -> MilvusReference:
    """Embed the images of ``images`` (path, pid, camid, timestamp) that the collection does not
    hold yet for this model, upsert them, and return the reference ``gallery_index`` saves.
    Images already stored are not re-embedded (an unchanged folder costs no forward pass);
    stored images missing from ``images`` stay (delete them explicitly)."""
    gallery.prepare(extractor.feature_dim, extractor.projection_dim, extractor.fingerprint,
                    metric)
    new = set(gallery.missing(images["path"].tolist(), extractor.fingerprint))
    todo = images[images["path"].isin(new)]
    for part, features in embedded_chunks(extractor, todo):
        gallery.upsert(features, part["path"].tolist(), part["pid"].tolist(),
                       part["camid"].tolist(), part["timestamp"].tolist(), extractor.fingerprint)
    size = gallery.count()
    logger.info("Milvus gallery %s/%s: %d images stored already, %d embedded; %d rows (model %s).",
                gallery.uri, gallery.collection, len(images) - len(todo), len(todo), size,
                extractor.fingerprint)
    return MilvusReference(_absolute(gallery.uri), gallery.collection, extractor.fingerprint,
                           metric, size, common_folder(images["path"].tolist()))


def embed_into_faiss(extractor: StoreEmbedder | StreamingEmbedder, images: pd.DataFrame,
                     metric: str, previous: GalleryIndex | None) -> GalleryIndex:
    """``GalleryIndex.build`` of ``images`` (path, pid, camid, timestamp), reusing
    ``previous``'s features of the same model; a streaming embedder's chunks fill the new
    rows' features in place, in input order (no second copy of them in this process)."""
    embedder = (_InOrder(extractor, images) if isinstance(extractor, StreamingEmbedder)
                else extractor)
    return GalleryIndex.build(
        embedder, images["path"].tolist(), images["pid"].tolist(), images["camid"].tolist(),
        metric=metric, previous=previous, timestamps=images["timestamp"].tolist())


class _InOrder:
    """A streaming embedder as GalleryIndex.build's Embedder: the features of the paths asked
    for, in their order, written chunk by chunk into one tensor."""

    def __init__(self, streaming: StreamingEmbedder, images: pd.DataFrame) -> None:
        self._streaming, self._images = streaming, images.set_index("path", drop=False)
        self.fingerprint, self.feature_dim = streaming.fingerprint, streaming.feature_dim

    def __call__(self, images: list[Any], camids: Any = None) -> torch.Tensor:
        todo = self._images.loc[[str(image) for image in images]].reset_index(drop=True)
        features = torch.empty(len(todo), self.feature_dim)
        for part, chunk in self._streaming.stream(todo):
            features[torch.tensor(part["row"].to_numpy(), dtype=torch.long)] = chunk
        return features


def open_gallery(saved: SavedGallery, store: MilvusGallery | None = None) -> Gallery:
    """The gallery ``saved`` describes: the GalleryIndex itself, or the Milvus collection a
    reference points to (``store`` when given, e.g. the catalog's ``gallery_store`` with its
    credentials; else a connection by the reference alone, token from CLIP_REID_MILVUS_TOKEN)."""
    if isinstance(saved, GalleryIndex):
        return saved
    if store is None:
        key = (saved.uri, saved.collection)
        if key not in _opened:
            _opened[key] = MilvusGallery(*key, token=os.environ.get(TOKEN_VARIABLE))
        store = _opened[key]
    elif (_absolute(store.uri), store.collection) != (saved.uri, saved.collection):
        raise ValueError(
            f"gallery_index refers to collection {saved.collection!r} at {saved.uri}, but "
            f"the catalog's gallery_store is {store.collection!r} at {store.uri}: run with the "
            "same inference.gallery.uri that embedded the gallery.")
    stored = store.fingerprint
    if stored != saved.fingerprint:
        raise ValueError(
            f"Collection {store.collection!r} at {store.uri} now holds model "
            f"{stored or 'nothing'}, not the model {saved.fingerprint} gallery_index was "
            "embedded with: re-run kedro run --pipeline inference.")
    return store


def served_paths(found: pd.DataFrame, saved: SavedGallery,
                 settings: ServingSettings) -> pd.DataFrame:
    """``found``'s paths as the serving settings show them; relative to the gallery's common
    folder, which a store reference records (it holds no path list)."""
    if isinstance(saved, GalleryIndex):
        return shown_paths(found, saved.paths, settings)
    root = settings.path_root or saved.path_root
    return shown_paths(found, [], replace(settings, path_root=root or None))


def _absolute(uri: str) -> str:
    """A milvus-lite file as an absolute path (the served model runs from another folder)."""
    return uri if "://" in uri else str(Path(uri).resolve())
