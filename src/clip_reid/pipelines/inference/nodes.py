"""Nodes of inference: list the queries, embed the gallery (reusing the last run's features),
name each query's identity or call it unknown, publish model and gallery for serving. The work
is in clip_reid.inference."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException

from clip_reid.inference import FeatureExtractor, GalleryIndex
from clip_reid.inference.embedders import gallery_embedder
from clip_reid.inference.gallery_store import (
    MilvusReference,
    SavedGallery,
    embed_into_faiss,
    embed_into_milvus,
    open_gallery,
    served_paths,
)
from clip_reid.inference.identify import identify
from clip_reid.inference.listing import folder_queries, gallery_images
from clip_reid.inference.serving import request_slot
from clip_reid.inference.settings import InferenceSettings
from clip_reid.io.milvus_dataset import MilvusGalleryHandle
from clip_reid.modeling.reid_checkpoint import ReidCheckpoint


def list_query_images(queries: str | None, dataset_root: str) -> pd.DataFrame:
    """Every readable image under ``queries`` as ``image, name``; ``queries: null`` means the
    ingested dataset's own query/ folder."""
    return folder_queries(Path(queries or Path(dataset_root) / "query"))


def embed_gallery(
    reid_model: ReidCheckpoint, previous_gallery_index: SavedGallery | None,
    image_index: pd.DataFrame, inference: dict[str, Any], gallery_store: MilvusGalleryHandle,
) -> SavedGallery:
    """The gallery's features under ``reid_model``, embedded on the ``inference.embedding``
    engine; images already embedded with the same model (by the previous version, or in the
    Milvus collection) are reused, so an unchanged gallery costs no forward pass. The gallery is
    ``inference.gallery`` if set, else the gallery split of ``image_index``;
    ``inference.gallery.store`` says where it lives."""
    settings = InferenceSettings.from_params(inference, "inference")
    images = gallery_images(settings.gallery, image_index)
    embedder = gallery_embedder(reid_model, settings.batch_size, settings.embedding)
    if settings.gallery.store == "milvus":
        with gallery_store as store:
            return embed_into_milvus(embedder, images, store.gallery, settings.distance)
    previous = (previous_gallery_index if isinstance(previous_gallery_index, GalleryIndex)
                else None)  # a Milvus reference has no features to reuse here
    return embed_into_faiss(embedder, images, settings.distance, previous)


def identify_queries(
    query_images: pd.DataFrame, reid_model: ReidCheckpoint, gallery_index: SavedGallery,
    inference: dict[str, Any], gallery_store: MilvusGalleryHandle | None = None,
) -> pd.DataFrame:
    """One row per query (an image or a description): its name, predicted pid or UNKNOWN_PID,
    and the top-k gallery answers (see clip_reid.inference.identify), from the faiss gallery or
    the Milvus collection ``gallery_index`` refers to."""
    settings = InferenceSettings.from_params(inference, "inference")
    with gallery_store or nullcontext():
        store = (gallery_store.gallery
                 if gallery_store and isinstance(gallery_index, MilvusReference) else None)
        return identify(query_images, FeatureExtractor.cached(reid_model, settings.batch_size),
                        open_gallery(gallery_index, store), settings.threshold, settings.top_k,
                        allow_paths=True, max_pixels=settings.serving.max_pixels)


def identify_queries_served(
    query_images: pd.DataFrame, reid_model: ReidCheckpoint, gallery_index: SavedGallery,
    inference: dict[str, Any],
) -> pd.DataFrame:
    """``identify_queries`` in the served model, within the ``inference.serving`` limits (see
    ServingSettings: pixels per image and request, records per request, requests decoded at
    once, which gallery paths answers show). The extractor is built once per model, not per
    request. Bad input becomes an MlflowException, which the scoring server answers with HTTP
    400 and this message (any other exception type gets a generic "unexpected error")."""
    try:
        settings = InferenceSettings.from_params(inference, "inference")
        serving = settings.serving
        serving.check_records(len(query_images))
        with request_slot(serving):
            found = identify(query_images,
                             FeatureExtractor.cached(reid_model, settings.batch_size),
                             open_gallery(gallery_index), settings.threshold, settings.top_k,
                             allow_paths=False, max_pixels=serving.max_pixels,
                             max_request_pixels=serving.max_request_pixels)
        return served_paths(found, gallery_index, serving)
    except ValueError as error:
        raise MlflowException.invalid_parameter_value(str(error)) from error


def publish_for_serving(
    reid_model: ReidCheckpoint, gallery_index: SavedGallery
) -> tuple[ReidCheckpoint, SavedGallery]:
    """Unversioned copies of this run's model and gallery for the logged MLflow model
    (kedro-mlflow packs a dataset's whole folder: every version of a versioned entry). The
    model copy names its fingerprint, so the server hashes no weights per request."""
    reid_model.require_model(gallery_index.fingerprint, "gallery_index",
                             "re-run embed_gallery before publishing them together.")
    return reid_model.published(), gallery_index
