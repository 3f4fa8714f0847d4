"""The labelled gallery in Milvus, for galleries that outgrow one process: the same searches as
GalleryIndex (image and text, with camera/time filters, same answer frame) plus what a growing
deployment needs: upsert by stable image id, delete by image, by person and by age.

One code path for milvus-lite (``uri`` = a local ``.db`` file, no server: tests and one machine)
and a Milvus cluster (``uri`` = ``http://host:19530`` plus a token). pymilvus is imported on first
use only, so a faiss run never loads it. Every backend failure is re-raised as
GalleryStoreError naming the uri and the collection (never a bare gRPC traceback).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clip_reid.inference.gallery import answers_frame
from clip_reid.inference.gallery_filter import GalleryFilter
from clip_reid.metrics.distance import METRICS, as_feature_matrix

logger = logging.getLogger(__name__)

# Every Milvus vector index the collection may be given; milvus-lite builds only LITE_INDEX_TYPES.
INDEX_TYPES = ("FLAT", "HNSW", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "DISKANN", "AUTOINDEX")
LITE_INDEX_TYPES = ("FLAT", "HNSW", "IVF_FLAT", "IVF_SQ8")
MILVUS_METRICS = {"cosine": "COSINE", "dot": "IP", "euclidean": "L2"}
OUTPUT_FIELDS = ["path", "pid", "camid"]
MAX_PATH_CHARS = 4096
FINGERPRINT_CHARS = 128
ID_BITS = 63  # Milvus primary keys are signed int64
SECONDS_PER_DAY = 86_400.0
WRITE_BATCH = 2_000  # rows per upsert request: bounded request size (gRPC caps at 64 MB)
LOOKUP_BATCH = 1_000  # ids per "id in [...]" query


class GalleryStoreError(RuntimeError):
    """The store cannot be reached or refused an operation (the message names uri and
    collection)."""


@dataclass(frozen=True)
class MilvusIndex:
    """How the collection is indexed and searched (catalog settings). ``params``: the index's
    build parameters (e.g. {"M": 16, "efConstruction": 200} for HNSW, {"nlist": 1024} for IVF);
    ``search_params``: per search (e.g. {"ef": 64}, {"nprobe": 16})."""

    index_type: str = "FLAT"
    params: dict[str, Any] = field(default_factory=dict)
    search_params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.index_type not in INDEX_TYPES:
            raise ValueError(f"index_type must be one of {INDEX_TYPES}, got {self.index_type!r}.")


def image_id(path: str) -> int:
    """A stable primary key for a gallery image: 63 bits of BLAKE2b of its path, so re-running
    on the same files upserts the same rows (collision odds at 1B images: about 5 %, per
    birthday bound n^2 / 2^64)."""
    digest = hashlib.blake2b(str(path).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") & ((1 << ID_BITS) - 1)


class MilvusGallery:
    """A gallery collection at ``uri``; connect lazily, close with ``close()`` or ``with``."""

    def __init__(self, uri: str, collection: str = "gallery", *, token: str | None = None,
                 index: MilvusIndex | None = None, timeout: float = 30.0) -> None:
        self.uri, self.collection = str(uri), str(collection)
        self.index = index or MilvusIndex()
        self._token, self._timeout = token, timeout
        self._client: Any = None
        self._loaded = False

    def __repr__(self) -> str:  # never shows the token
        return f"MilvusGallery(uri={self.uri!r}, collection={self.collection!r})"

    def __enter__(self) -> MilvusGallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_local(self) -> bool:
        return "://" not in self.uri

    def close(self) -> None:
        """Disconnect; for milvus-lite also stop this process's server of the file, which
        holds the file's lock (pymilvus never does), so another process (the served model, the
        search page) can open it."""
        if self._client is not None:
            client, self._client, self._loaded = self._client, None, False
            with self._errors("closing the connection"):
                client.close()
            if self.is_local:
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(self.uri)

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        from pymilvus.exceptions import MilvusException

        try:
            yield
        except MilvusException as error:
            raise GalleryStoreError(
                f"Milvus at {self.uri}, collection {self.collection!r}: {action} failed: "
                f"{getattr(error, 'message', error)}. Check that the uri is right and the server "
                "is up (a local milvus-lite uri is a path ending in .db)."
            ) from None

    @property
    def client(self) -> Any:
        """The connected pymilvus MilvusClient (created on first use)."""
        if self._client is None:
            from pymilvus import MilvusClient

            if self.is_local:
                if not self.uri.endswith(".db"):
                    raise GalleryStoreError(
                        f"Milvus uri {self.uri} (collection {self.collection!r}) is neither a "
                        "server address (http://host:19530) nor a milvus-lite file ending in .db.")
                Path(self.uri).parent.mkdir(parents=True, exist_ok=True)
            with self._errors("connecting"):
                self._client = MilvusClient(uri=self.uri, token=self._token or "",
                                            timeout=self._timeout)
        return self._client

    # --- the collection ---------------------------------------------------------------------

    def exists(self) -> bool:
        with self._errors("looking up the collection"):
            return bool(self.client.has_collection(self.collection))

    def _schema(self) -> dict[str, Any]:
        if not self.exists():
            raise GalleryStoreError(
                f"Milvus at {self.uri} has no collection {self.collection!r}: embed the gallery "
                "first (kedro run --pipeline inference --params inference.gallery.store=milvus).")
        with self._errors("describing the collection"):
            return self.client.describe_collection(self.collection)

    def _vector_dims(self) -> dict[str, int]:
        return {item["name"]: int(item["params"]["dim"]) for item in self._schema()["fields"]
                if "dim" in item["params"]}

    @property
    def dim(self) -> int:
        return self._vector_dims()["vector"]

    @property
    def text_dim(self) -> int:
        """Width of the projection indexed for text search (0: the model has no text tower)."""
        return self._vector_dims().get("text_vector", 0)

    @property
    def metric(self) -> str:
        with self._errors("describing the index"):
            milvus_metric = self.client.describe_index(self.collection, "vector")["metric_type"]
        return {value: key for key, value in MILVUS_METRICS.items()}[milvus_metric]

    @property
    def fingerprint(self) -> str:
        """The model that embedded the stored vectors ("" while the collection is empty)."""
        rows = self._query("", ["fingerprint"], limit=1)
        return rows[0]["fingerprint"] if rows else ""

    def __len__(self) -> int:
        return self.count()

    def _loaded_client(self) -> Any:
        """The client, with the collection loaded for reads (a collection opened by another
        process, or after a server restart, is "released" until loaded)."""
        client = self.client
        if not self._loaded:
            self._schema()  # a clear error when the collection does not exist
            with self._errors("loading the collection"):
                client.load_collection(self.collection)
            self._loaded = True
        return client

    def count(self, where: str = "") -> int:
        with self._errors("counting rows"):
            found = self._loaded_client().query(self.collection, filter=where,
                                                output_fields=["count(*)"])
        return int(found[0]["count(*)"])

    def prepare(self, dim: int, text_dim: int, fingerprint: str, metric: str = "cosine") -> None:
        """Create the collection for ``dim``-d features of model ``fingerprint``, or check that
        the existing one holds the same width, metric and model (refused otherwise: one
        collection never mixes models)."""
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}.")
        if not self.exists():
            self._create(dim, text_dim, metric)
        self._check_same(dim, text_dim, fingerprint, metric)

    def _check_same(self, dim: int, text_dim: int, fingerprint: str, metric: str) -> None:
        where = f"Milvus at {self.uri}, collection {self.collection!r}"
        if self.dim != dim or self.text_dim != text_dim:
            raise ValueError(
                f"{where} holds {self.dim}-d vectors (text {self.text_dim}-d), not {dim}-d (text "
                f"{text_dim}-d): it was built for another backbone. Use another collection or "
                "delete this one.")
        if self.metric != metric:
            raise ValueError(f"{where} is indexed for the {self.metric} metric, not {metric}.")
        stored = self.fingerprint
        if stored and stored != fingerprint:
            raise ValueError(
                f"{where} holds features of model {stored}, not of this model ({fingerprint}): "
                "a collection never mixes models. Embed into another collection, or drop this "
                "one (MilvusGallery.drop) and embed again.")

    def _create(self, dim: int, text_dim: int, metric: str) -> None:
        from pymilvus import DataType

        if self.is_local and self.index.index_type not in LITE_INDEX_TYPES:
            raise ValueError(
                f"milvus-lite ({self.uri}) builds only {LITE_INDEX_TYPES}, not "
                f"{self.index.index_type}: use a Milvus cluster or another index_type.")
        client = self.client
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("path", DataType.VARCHAR, max_length=MAX_PATH_CHARS)
        schema.add_field("pid", DataType.INT64)
        schema.add_field("camid", DataType.INT64)
        schema.add_field("timestamp", DataType.DOUBLE)
        schema.add_field("fingerprint", DataType.VARCHAR, max_length=FINGERPRINT_CHARS)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(dim))
        indexes = client.prepare_index_params()
        indexes.add_index("vector", index_type=self.index.index_type,
                          metric_type=MILVUS_METRICS[metric], params=dict(self.index.params))
        if text_dim:
            schema.add_field("text_vector", DataType.FLOAT_VECTOR, dim=int(text_dim))
            indexes.add_index("text_vector", index_type=self.index.index_type,
                              metric_type="COSINE", params=dict(self.index.params))
        with self._errors("creating the collection"):
            client.create_collection(self.collection, schema=schema, index_params=indexes)
        logger.info("Milvus: created collection %r at %s (%d-d, %s, %s).", self.collection,
                    self.uri, dim, metric, self.index.index_type)

    def drop(self) -> None:
        """Delete the whole collection (e.g. before re-embedding with another model)."""
        with self._errors("dropping the collection"):
            self.client.drop_collection(self.collection)
        self._loaded = False
        logger.info("Milvus: dropped collection %r at %s.", self.collection, self.uri)

    # --- writes -----------------------------------------------------------------------------

    def upsert(self, features: Any, paths: Sequence[str], pids: Sequence[int],
               camids: Sequence[int], timestamps: Sequence[float], fingerprint: str) -> int:
        """Insert or replace (by image id = hash of the path) the rows of these images; the
        collection must exist (``prepare``) and hold the same model. Returns the row count."""
        matrix = as_feature_matrix(features, "gallery features").numpy()
        if not len(matrix) == len(paths) == len(pids) == len(camids) == len(timestamps):
            raise ValueError(
                f"Got {len(matrix)} feature rows, {len(paths)} paths, {len(pids)} pids, "
                f"{len(camids)} camids and {len(timestamps)} timestamps: one of each per image.")
        self._check_same(matrix.shape[1], self.text_dim, fingerprint, self.metric)
        text_dim = self.text_dim
        for start in range(0, len(matrix), WRITE_BATCH):
            stop = start + WRITE_BATCH
            # numpy rows: pymilvus turns one row at a time into Python floats while it packs
            # the request, instead of the whole batch at once (2,000 rows of 640: about 40 MB)
            rows = [
                {"id": image_id(path), "path": str(path), "pid": int(pid), "camid": int(cam),
                 "timestamp": float(time_), "fingerprint": fingerprint, "vector": vector,
                 **({"text_vector": vector[-text_dim:]} if text_dim else {})}
                for path, pid, cam, time_, vector in zip(
                    paths[start:stop], pids[start:stop], camids[start:stop],
                    timestamps[start:stop], matrix[start:stop], strict=True)
            ]
            with self._errors("upserting gallery rows"):
                self.client.upsert(self.collection, rows)
        return len(matrix)

    def missing(self, paths: Sequence[str], fingerprint: str) -> list[str]:
        """The ``paths`` with no row embedded by model ``fingerprint`` (what an incremental run
        must embed)."""
        stored: set[int] = set()
        ids = [image_id(path) for path in paths]
        for start in range(0, len(ids), LOOKUP_BATCH):
            chunk = ids[start:start + LOOKUP_BATCH]
            found = self._query(f"id in {chunk}", ["id", "fingerprint"])
            stored |= {row["id"] for row in found if row["fingerprint"] == fingerprint}
        return [path for path, key in zip(paths, ids, strict=True) if key not in stored]

    def delete_images(self, paths: Sequence[str]) -> int:
        """Forget these images (by path; their stable ids). Returns how many were deleted."""
        ids = [image_id(path) for path in paths]
        return self.delete_where(f"id in {ids}", f"{len(ids)} image id(s)")

    def delete_pids(self, pids: Sequence[int]) -> int:
        """Forget these people: every crop labelled with one of ``pids``."""
        wanted = sorted({int(pid) for pid in pids})
        return self.delete_where(f"pid in {wanted}", f"pids {wanted}")

    def delete_older_than(self, days: float, now: float | None = None) -> int:
        """Retention: forget crops whose timestamp is more than ``days`` before ``now`` (epoch
        seconds; default: the current time). Crops of unknown time (NaN) are kept."""
        if not days >= 0:
            raise ValueError(f"The retention period must be >= 0 days, got {days}.")
        cutoff = (time.time() if now is None else float(now)) - float(days) * SECONDS_PER_DAY
        return self.delete_where(f"timestamp < {cutoff!r}", f"crops older than {days} day(s)")

    def delete_where(self, expression: str, what: str = "rows") -> int:
        """Delete the rows matching a Milvus boolean expression; logs the count before and
        after, returns how many went."""
        before = self.count()
        with self._errors(f"deleting {what}"):
            self._loaded_client().delete(self.collection, filter=expression)
        after = self.count()
        logger.info("Milvus %s/%s: deleted %s: %d -> %d rows.", self.uri, self.collection, what,
                    before, after)
        return before - after

    # --- reads ------------------------------------------------------------------------------

    def _query(self, expression: str, fields: list[str], limit: int | None = None) -> list[dict]:
        with self._errors("querying rows"):
            return list(self._loaded_client().query(self.collection, filter=expression,
                                          output_fields=fields,
                                          **({} if limit is None else {"limit": limit})))

    def rows(self, where: str = "") -> pd.DataFrame:
        """The stored rows' ``id, path, pid, camid, timestamp`` (no vectors)."""
        found = self._query(where, ["id", "path", "pid", "camid", "timestamp"])
        return pd.DataFrame(found, columns=["id", "path", "pid", "camid", "timestamp"])

    def path_of(self, key: int) -> str:
        found = self._query(f"id == {int(key)}", ["path"])
        if not found:
            raise IndexError(f"No image {key} in collection {self.collection!r} at {self.uri}.")
        return found[0]["path"]

    def search(self, features: Any, k: int = 10, threshold: float | None = None,
               where: GalleryFilter | None = None) -> pd.DataFrame:
        """As GalleryIndex.search (same columns and distance scale; an answer's row id is
        ``image_id`` of its path)."""
        queries = as_feature_matrix(features, "query features").numpy()
        if queries.shape[1] != self.dim:
            raise ValueError(
                f"The query features are {queries.shape[1]}-d but collection {self.collection!r} "
                f"at {self.uri} holds {self.dim}-d features: use the model that embedded it.")
        return self._search(queries, "vector", self.metric, k, threshold, where)

    def search_text(self, text_features: Any, k: int = 10, threshold: float | None = None,
                    where: GalleryFilter | None = None) -> pd.DataFrame:
        """As GalleryIndex.search_text: 1 - cosine against the image projection."""
        queries = as_feature_matrix(text_features, "text features").numpy()
        if not self.text_dim or queries.shape[1] != self.text_dim:
            raise ValueError(
                f"The text features are {queries.shape[1]}-d but collection "
                f"{self.collection!r} at {self.uri} indexes {self.text_dim}-d projections: "
                "embed the text with the model that embedded the gallery.")
        return self._search(queries, "text_vector", "cosine", k, threshold, where)

    def _search(self, queries: np.ndarray, field_name: str, metric: str, k: int,
                threshold: float | None, where: GalleryFilter | None) -> pd.DataFrame:
        params = {"metric_type": MILVUS_METRICS[metric], "params": dict(self.index.search_params)}
        with self._errors("searching"):
            hits = self._loaded_client().search(
                self.collection, data=queries.tolist(), anns_field=field_name, limit=int(k),
                filter=where.expression() if where else "", output_fields=OUTPUT_FIELDS,
                search_params=params)
        if not all(len(found) for found in hits):
            raise ValueError(
                f"No gallery image in collection {self.collection!r} at {self.uri}"
                + (f" matches the filter {where.expression()}" if where else "")
                + ": widen the filter or embed the gallery.")
        return answers_frame(
            [[hit["entity"]["pid"] for hit in found] for found in hits],
            [[hit["entity"]["path"] for hit in found] for found in hits],
            [[hit["entity"]["camid"] for hit in found] for found in hits],
            [[_distance(hit["distance"], metric) for hit in found] for found in hits],
            threshold)


def _distance(score: float, metric: str) -> float:
    """Milvus's score as GalleryIndex's distance (smaller = closer): COSINE and IP are
    similarities, L2 is already the squared distance."""
    if metric == "cosine":
        return 1.0 - float(score)
    if metric == "dot":
        return -float(score)
    return float(score)
