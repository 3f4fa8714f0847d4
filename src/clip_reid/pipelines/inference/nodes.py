"""Nodes of inference: list the queries, embed the gallery (reusing the last run's features),
name each query's identity or call it unknown, publish model and gallery for serving. The work
is in clip_reid.inference."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException

from clip_reid.engine_settings import EmbeddingEngineSettings
from clip_reid.inference import FeatureExtractor, GalleryIndex
from clip_reid.inference.embedders import gallery_embedder
from clip_reid.inference.fingerprint import published
from clip_reid.inference.gallery_store import (
    embed_into_milvus,
    faiss_state,
    is_reference,
    open_gallery,
    served_paths,
)
from clip_reid.inference.identify import identify
from clip_reid.inference.images import DEFAULT_MAX_PIXELS
from clip_reid.inference.listing import GallerySettings, folder_queries, gallery_images
from clip_reid.inference.serving import ServingSettings, request_slot
from clip_reid.io.milvus_dataset import MilvusGalleryHandle


def list_query_images(queries: str | None, dataset_root: str) -> pd.DataFrame:
    """Every readable image under ``queries`` as ``image, name``; ``queries: null`` means the
    ingested dataset's own query/ folder."""
    return folder_queries(Path(queries or Path(dataset_root) / "query"))


def embed_gallery(
    reid_model: dict[str, Any], previous_gallery_index: dict[str, Any] | None,
    gallery: dict[str, Any], image_index: pd.DataFrame, metric: str, batch_size: int,
    embedding: dict[str, Any] | None = None, gallery_store: MilvusGalleryHandle | None = None,
) -> dict[str, Any]:
    """The gallery's features under ``reid_model``, embedded on the ``inference.embedding``
    engine; images already embedded with the same model (by the previous version, or in the
    Milvus collection) are reused, so an unchanged gallery costs no forward pass. The gallery is
    ``inference.gallery`` if set, else the gallery split of ``image_index``;
    ``inference.gallery.store`` says where it lives."""
    settings = GallerySettings.from_params(gallery, "inference.gallery")
    images = gallery_images(settings, image_index)
    embedder = gallery_embedder(
        reid_model, batch_size,
        EmbeddingEngineSettings.from_params(embedding, "inference.embedding"))
    if settings.store == "milvus":
        with gallery_store as store:
            return embed_into_milvus(embedder, images, store.gallery, metric)
    index = GalleryIndex.build(
        embedder, images["path"].tolist(), images["pid"].tolist(), images["camid"].tolist(),
        metric=metric, previous=faiss_state(previous_gallery_index),
        timestamps=images["timestamp"].tolist(),
    )
    return index.to_state()


def identify_queries(
    query_images: pd.DataFrame, reid_model: dict[str, Any], gallery_index: dict[str, Any],
    threshold: float | None, top_k: int, batch_size: int, allow_paths: bool = True,
    max_pixels: int | None = DEFAULT_MAX_PIXELS, max_request_pixels: int | None = None,
    gallery_store: MilvusGalleryHandle | None = None,
) -> pd.DataFrame:
    """One row per query (an image or a description): its name, predicted pid or UNKNOWN_PID,
    and the top-k gallery answers (see clip_reid.inference.identify), from the faiss gallery or
    the Milvus collection ``gallery_index`` refers to. The extractor is built once per model,
    not per request."""
    with gallery_store or nullcontext():
        store = gallery_store.gallery if gallery_store and is_reference(gallery_index) else None
        return identify(query_images, FeatureExtractor.cached(reid_model, batch_size),
                        open_gallery(gallery_index, store), threshold, top_k,
                        allow_paths=allow_paths, max_pixels=max_pixels,
                        max_request_pixels=max_request_pixels)


def identify_queries_served(
    query_images: pd.DataFrame, reid_model: dict[str, Any], gallery_index: dict[str, Any],
    threshold: float | None, top_k: int, batch_size: int, serving: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """``identify_queries`` in the served model, within the ``inference.serving`` limits (see
    ServingSettings: pixels per image, records per request, requests decoded at once, which
    gallery paths answers show). Bad input becomes an MlflowException, which the scoring server
    answers with HTTP 400 and this message (any other exception type gets a generic
    "unexpected error" message)."""
    try:
        settings = ServingSettings.from_params(serving, "inference.serving")
        settings.check_records(len(query_images))
        with request_slot(settings):
            found = identify_queries(query_images, reid_model, gallery_index, threshold, top_k,
                                     batch_size, allow_paths=False,
                                     max_pixels=settings.max_pixels,
                                     max_request_pixels=settings.max_request_pixels)
        return served_paths(found, gallery_index, settings)
    except ValueError as error:
        raise MlflowException.invalid_parameter_value(str(error)) from error


def publish_for_serving(
    reid_model: dict[str, Any], gallery_index: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Unversioned copies of this run's model and gallery for the logged MLflow model
    (kedro-mlflow packs a dataset's whole folder: every version of a versioned entry). The
    model copy carries its fingerprint, so the server hashes no weights per request."""
    served_model = published(reid_model)
    if gallery_index["fingerprint"] != served_model["fingerprint"]:
        raise ValueError("gallery_index was embedded by another model than reid_model: re-run "
                         "embed_gallery before publishing them together.")
    return served_model, gallery_index
