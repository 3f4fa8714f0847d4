"""The Milvus gallery as a Kedro dataset, in kedro-datasets' experimental vector-store shape
(``AbstractVectorStoreDataset``: ``load()`` returns a handle with add / search / delete that the
node closes with ``with``; saving goes through the handle), so Weaviate or Chroma datasets fit the
same place. The handle also exposes the library's MilvusGallery (``.gallery``), which the nodes
use for the project's own operations (upsert with fingerprint checks, filtered search).

Loading connects nothing: a faiss run loads this entry too and must not import pymilvus.
Credentials come from Kedro's credentials file (``token``, or ``user`` and ``password``) and
never appear in ``_describe`` or logs.
"""

from __future__ import annotations

from typing import Any

from kedro_datasets_experimental.vectorstore_base import (
    AbstractVectorStoreDataset,
    VectorStoreHandle,
)

from clip_reid.inference.gallery_filter import GalleryFilter
from clip_reid.inference.milvus_gallery import MilvusGallery, MilvusIndex, image_id

PROPERTY_KEYS = ("path", "pid", "camid", "timestamp", "fingerprint")


class MilvusGalleryHandle(VectorStoreHandle):
    """A connection (opened on first use) to one gallery collection."""

    def __init__(self, gallery: MilvusGallery) -> None:
        self.gallery = gallery

    def add(self, records: list[dict[str, Any]]) -> list[str]:
        """Upsert records ``{"properties": {path, pid, camid, timestamp, fingerprint},
        "vector": [...]}``; ids are the stable image ids of the paths (a given ``id`` must
        match)."""
        if not records:
            return []
        props = [record["properties"] for record in records]
        missing = sorted({key for prop in props for key in PROPERTY_KEYS if key not in prop})
        if missing:
            raise ValueError(f"Gallery records need properties {list(PROPERTY_KEYS)}; missing "
                             f"{missing}.")
        fingerprints = {prop["fingerprint"] for prop in props}
        if len(fingerprints) != 1:
            raise ValueError(f"One add() holds one model's features, got {sorted(fingerprints)}.")
        ids = [str(image_id(prop["path"])) for prop in props]
        given = [(str(record["id"]), key) for record, key in zip(records, ids, strict=True)
                 if "id" in record and str(record["id"]) != key]
        if given:
            raise ValueError(f"Record id {given[0][0]} is not the image id of its path "
                             f"({given[0][1]}): leave ids out, they are derived from paths.")
        self.gallery.upsert([record["vector"] for record in records],
                            [prop["path"] for prop in props], [prop["pid"] for prop in props],
                            [prop["camid"] for prop in props],
                            [prop["timestamp"] for prop in props], fingerprints.pop())
        return ids

    def search(self, *, vector: list[float] | None = None, text: str | None = None,
               top_k: int = 10, filters: GalleryFilter | None = None) -> list[dict[str, Any]]:
        """Nearest gallery images of one feature vector (``text`` needs a text encoder: use
        FeatureExtractor.encode_text and ``gallery.search_text``)."""
        if text is not None or vector is None:
            raise NotImplementedError("This store has no server-side text encoder: pass the "
                                      "vector of FeatureExtractor.encode_text to "
                                      "handle.gallery.search_text instead.")
        found = self.gallery.search([vector], k=top_k, where=filters).iloc[0]
        return [{"id": str(image_id(path)), "distance": distance,
                 "properties": {"path": path, "pid": pid, "camid": camid}}
                for distance, path, pid, camid in zip(
                    found["topk_distances"], found["topk_paths"], found["topk_pids"],
                    found["topk_camids"], strict=True)]

    def delete(self, *, ids: list[str] | None = None, filters: Any = None) -> None:
        """Delete by record ids, or by a Milvus boolean expression (e.g. ``"pid in [5]"``)."""
        if (ids is None) == (filters is None):
            raise ValueError("Pass exactly one of ids and filters to delete().")
        expression = f"id in {[int(key) for key in ids]}" if ids is not None else str(filters)
        self.gallery.delete_where(expression, "records")

    def describe(self) -> dict[str, Any]:
        return {"collection": self.gallery.collection, "count": self.gallery.count(),
                "uri": self.gallery.uri, "index_type": self.gallery.index.index_type}

    @property
    def raw_client(self) -> Any:
        return self.gallery.client

    def close(self) -> None:
        self.gallery.close()


class MilvusGalleryDataset(AbstractVectorStoreDataset):
    """A gallery collection at ``uri`` (a milvus-lite ``.db`` file or ``http://host:19530``)."""

    def __init__(self, *, uri: str, collection: str = "gallery", index_type: str = "FLAT",
                 index_params: dict[str, Any] | None = None,
                 search_params: dict[str, Any] | None = None, timeout: float = 30.0,
                 credentials: dict[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        self._uri, self._collection, self._timeout = str(uri), str(collection), float(timeout)
        self._index = MilvusIndex(index_type, dict(index_params or {}),
                                  dict(search_params or {}))
        self._token = _token(credentials or {})
        self.metadata = metadata

    def _load(self) -> MilvusGalleryHandle:
        return MilvusGalleryHandle(MilvusGallery(self._uri, self._collection, token=self._token,
                                                 index=self._index, timeout=self._timeout))

    def _describe(self) -> dict[str, Any]:
        return {"uri": self._uri, "collection": self._collection,
                "index_type": self._index.index_type}


def _token(credentials: dict[str, Any]) -> str | None:
    """Milvus's token: ``token``, or ``user:password``."""
    if "token" in credentials:
        return str(credentials["token"])
    if "user" in credentials:
        return f"{credentials['user']}:{credentials['password']}"
    return None
