"""One gallery, two stores: faiss in the process (GalleryIndex, saved whole as ``gallery_index``)
or a Milvus collection (``gallery_index`` then saves a small reference to it: uri, collection,
model fingerprint, size). The searchers (identify, text search, the served model, the page)
open either through ``open_gallery`` and get the same answer frame."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import torch

from clip_reid.inference.gallery import GalleryIndex
from clip_reid.inference.gallery_filter import GalleryFilter
from clip_reid.inference.milvus_gallery import MilvusGallery
from clip_reid.inference.serving import ServingSettings, common_folder, shown_paths

logger = logging.getLogger(__name__)

REFERENCE_KEYS = ("store", "uri", "collection", "fingerprint", "metric", "size", "path_root")
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


class StoreEmbedder(Protocol):
    fingerprint: str
    feature_dim: int
    projection_dim: int

    def __call__(self, images: list[Any], camids: list[int] | None = None) -> torch.Tensor: ...


def embed_into_milvus(extractor: StoreEmbedder, images: pd.DataFrame, gallery: MilvusGallery,
                      metric: str) -> dict[str, Any]:
    """Embed the images of ``images`` (path, pid, camid, timestamp) that the collection does not
    hold yet for this model, upsert them, and return the reference ``gallery_index`` saves.
    Images already stored are not re-embedded (an unchanged folder costs no forward pass);
    stored images missing from ``images`` stay (delete them explicitly)."""
    gallery.prepare(extractor.feature_dim, extractor.projection_dim, extractor.fingerprint,
                    metric)
    new = set(gallery.missing(images["path"].tolist(), extractor.fingerprint))
    todo = images[images["path"].isin(new)]
    for start in range(0, len(todo), EMBED_CHUNK):
        part = todo.iloc[start:start + EMBED_CHUNK]
        features = extractor(part["path"].tolist(), part["camid"].tolist())
        gallery.upsert(features, part["path"].tolist(), part["pid"].tolist(),
                       part["camid"].tolist(), part["timestamp"].tolist(), extractor.fingerprint)
    size = gallery.count()
    logger.info("Milvus gallery %s/%s: %d images stored already, %d embedded; %d rows (model %s).",
                gallery.uri, gallery.collection, len(images) - len(todo), len(todo), size,
                extractor.fingerprint)
    return {"store": "milvus", "uri": _absolute(gallery.uri), "collection": gallery.collection,
            "fingerprint": extractor.fingerprint, "metric": metric, "size": size,
            "path_root": common_folder(images["path"].tolist())}


def is_reference(state: dict[str, Any]) -> bool:
    return state.get("store") == "milvus"


def open_gallery(state: dict[str, Any], store: MilvusGallery | None = None) -> Gallery:
    """The gallery a ``gallery_index`` state describes: a GalleryIndex, or the Milvus collection
    it refers to (``store`` when given, e.g. the catalog's ``gallery_store`` with its
    credentials; else a connection by the reference alone, token from CLIP_REID_MILVUS_TOKEN)."""
    if not is_reference(state):
        return GalleryIndex.from_state(state)
    missing = [key for key in REFERENCE_KEYS if key not in state]
    if missing:
        raise ValueError(f"Not a gallery store reference: keys {missing} are missing.")
    if store is None:
        key = (state["uri"], state["collection"])
        if key not in _opened:
            _opened[key] = MilvusGallery(*key, token=os.environ.get(TOKEN_VARIABLE))
        store = _opened[key]
    elif (_absolute(store.uri), store.collection) != (state["uri"], state["collection"]):
        raise ValueError(
            f"gallery_index refers to collection {state['collection']!r} at {state['uri']}, but "
            f"the catalog's gallery_store is {store.collection!r} at {store.uri}: run with the "
            "same inference.gallery.uri that embedded the gallery.")
    stored = store.fingerprint
    if stored != state["fingerprint"]:
        raise ValueError(
            f"Collection {store.collection!r} at {store.uri} now holds model "
            f"{stored or 'nothing'}, not the model {state['fingerprint']} gallery_index was "
            "embedded with: re-run kedro run --pipeline inference.")
    return store


def faiss_state(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """``state`` if it is a GalleryIndex's (whose features a faiss build may reuse), else None
    (nothing saved yet, or a reference to a Milvus collection)."""
    return None if state is None or is_reference(state) else state


def served_paths(found: pd.DataFrame, state: dict[str, Any],
                 settings: ServingSettings) -> pd.DataFrame:
    """``found``'s paths as the serving settings show them; relative to the gallery's common
    folder, which a store reference records (it holds no path list)."""
    if not is_reference(state):
        return shown_paths(found, list(state["paths"]), settings)
    root = settings.path_root or state["path_root"]
    return shown_paths(found, [], replace(settings, path_root=root or None))


def _absolute(uri: str) -> str:
    """A milvus-lite file as an absolute path (the served model runs from another folder)."""
    return uri if "://" in uri else str(Path(uri).resolve())
