"""Nodes of inference: list queries and gallery, embed the gallery (reusing the last run's
features), and name each query's identity or call it unknown. The work is in clip_reid.inference."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException
from PIL import Image

from clip_reid.data.market import IMAGE_SUFFIXES, build_image_index, find_unreadable_images
from clip_reid.inference import FeatureExtractor, GalleryIndex, InvalidImageError, decode_image
from clip_reid.inference.fingerprint import model_fingerprint
from clip_reid.inference.images import DEFAULT_MAX_PIXELS
from clip_reid.inference.serving import ServingSettings, request_slot, shown_paths
from clip_reid.pipelines.inference.settings import GallerySettings

logger = logging.getLogger(__name__)

GALLERY_COLUMNS = ["path", "pid", "camid"]
NO_CAMERA = -1
# The served model's extractor, kept across requests: kedro-mlflow hands every request a fresh
# deep copy of the checkpoint, and rebuilding the network each time would dominate the latency.
_served_extractor: dict[tuple[str, int], FeatureExtractor] = {}


def list_query_images(queries: str | None, dataset: dict[str, Any]) -> pd.DataFrame:
    """Every readable image under ``queries`` (any names, sub-folders too) as ``image, name``.

    ``queries: null`` means the dataset's own query/ folder. Non-image files and images that
    fail to decode are skipped and reported, so one stray file does not stop a batch.
    """
    folder = Path(queries or Path(dataset["root"]) / "query")
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Query folder not found: {folder}. Set inference.queries to a folder of images."
        )
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    images = [str(path) for path in files if path.suffix.lower() in IMAGE_SUFFIXES]
    if len(images) < len(files):
        logger.warning("Skipped %d non-image file(s) in %s (image suffixes: %s).",
                       len(files) - len(images), folder, ", ".join(sorted(IMAGE_SUFFIXES)))
    unreadable = find_unreadable_images(images)
    for path, error in unreadable.items():
        logger.warning("Skipped unreadable query image %s: %s", path, error)
    usable = [path for path in images if path not in unreadable]
    if not usable:
        raise ValueError(f"No readable image in the query folder {folder}.")
    logger.info("Queries: %d images from %s (%d non-image, %d unreadable skipped).", len(usable),
                folder, len(files) - len(images), len(unreadable))
    names = [Path(path).relative_to(folder).as_posix() for path in usable]
    return pd.DataFrame({"image": usable, "name": names})


def list_gallery_images(gallery: dict[str, Any], dataset: dict[str, Any]) -> pd.DataFrame:
    """The labelled gallery (``path, pid, camid``): a labels CSV, or the gallery split
    (bounding_box_test/) of a Market-layout dataset (``root: null`` = the training dataset)."""
    settings = GallerySettings.from_params(gallery, "inference.gallery")
    if settings.labels_csv:
        frame = _labelled_images(Path(settings.labels_csv))
        source = settings.labels_csv
    else:
        source = settings.root or dataset["root"]
        index, _ = build_image_index(source, verify_images=False)
        frame = index.loc[index["split"] == "gallery", GALLERY_COLUMNS].reset_index(drop=True)
    if frame.empty:
        raise ValueError(f"The gallery {source} is empty: it needs labelled images to match.")
    logger.info("Gallery: %d images of %d identities from %s.", len(frame),
                frame["pid"].nunique(), source)
    return frame


def _labelled_images(csv: Path) -> pd.DataFrame:
    """Rows of a labels CSV (image, pid[, camid]); image paths are relative to the CSV's folder."""
    if not csv.is_file():
        raise FileNotFoundError(f"Gallery labels CSV not found: {csv}.")
    labels = pd.read_csv(csv)
    missing = {"image", "pid"} - set(labels.columns)
    if missing:
        raise ValueError(f"{csv} lacks column(s) {sorted(missing)}: expected image,pid[,camid].")
    paths = [str((csv.parent / str(image)).resolve()) for image in labels["image"]]
    absent = [path for path in paths if not Path(path).is_file()]
    if absent:
        raise FileNotFoundError(
            f"{len(absent)} image(s) listed in {csv} do not exist, e.g. {absent[0]}."
        )
    pids = pd.to_numeric(labels["pid"], errors="coerce")
    if pids.isna().any() or (pids % 1 != 0).any():
        raise ValueError(f"{csv}: every pid must be an integer identity number.")
    camids = labels["camid"] if "camid" in labels else NO_CAMERA
    return pd.DataFrame({"path": paths, "pid": pids.astype("int64"), "camid": camids})


def embed_gallery(
    reid_model: dict[str, Any], previous_gallery_index: dict[str, Any] | None,
    gallery: dict[str, Any], dataset: dict[str, Any], metric: str, batch_size: int,
) -> dict[str, Any]:
    """The gallery's features under ``reid_model``; images the previous version embedded with
    the same model are reused, so an unchanged gallery costs no forward pass. (Listing happens
    here, after training, because in `full` the demo dataset only exists once ingestion ran.)"""
    images = list_gallery_images(gallery, dataset)
    extractor = FeatureExtractor(reid_model, batch_size=batch_size)
    index = GalleryIndex.build(
        extractor, images["path"].tolist(), images["pid"].tolist(), images["camid"].tolist(),
        metric=metric, previous=previous_gallery_index,
    )
    return index.to_state()


def identify_queries(
    query_images: pd.DataFrame, reid_model: dict[str, Any], gallery_index: dict[str, Any],
    threshold: float | None, top_k: int, batch_size: int, allow_paths: bool = True,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> pd.DataFrame:
    """One row per query: ``name``, ``predicted_pid`` (or UNKNOWN_PID when the nearest gallery
    image is farther than ``threshold``), ``known``, ``distance`` and the top-k pids, paths
    and distances. ``query_images`` has, per row, ``image`` (path or base64) or ``text`` (a
    description, searched against the gallery's projection features), and optional ``name``,
    ``camid`` (needed by camera-aware models). Text answers use 1 - cosine similarity and are
    never unknown: ``threshold`` is calibrated for image-to-image distances."""
    if "image" not in query_images and "text" not in query_images:
        raise ValueError("query_images needs an 'image' column (a file path or base64 string) "
                         "or a 'text' column (a description of the person).")
    if query_images.empty:
        raise ValueError("No query image was given.")
    gallery = GalleryIndex.from_state(gallery_index)
    extractor = _extractor(reid_model, batch_size)
    if gallery.fingerprint != extractor.fingerprint:
        raise ValueError(
            f"The gallery was embedded by model {gallery.fingerprint}, not by this checkpoint "
            f"({extractor.fingerprint}): it comes from another model or backbone. Re-embed the "
            "gallery with this model (kedro run --pipeline inference does it)."
        )
    names = _query_names(query_images)
    is_text = _text_rows(query_images, names)
    parts = []
    if (~is_text).any():
        rows = query_images[~is_text]
        image_names = [name for name, text in zip(names, is_text, strict=True) if not text]
        images = _decoded(rows["image"].tolist(), image_names, allow_paths, max_pixels)
        camids = rows["camid"].tolist() if "camid" in rows else None
        found = gallery.search(extractor(images, camids), k=top_k, threshold=threshold)
        parts.append(found.set_axis(rows.index))
    if is_text.any():
        texts = query_images.loc[is_text, "text"].tolist()
        text_names = [name for name, text in zip(names, is_text, strict=True) if text]
        found = gallery.search_text(extractor.encode_text(texts, names=text_names), k=top_k)
        parts.append(found.set_axis(query_images.index[is_text]))
    found = pd.concat(parts).loc[query_images.index].reset_index(drop=True)
    found.insert(0, "name", names)
    return found


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
                                     max_pixels=settings.max_pixels)
        return shown_paths(found, gallery_index["paths"], settings)
    except ValueError as error:
        raise MlflowException.invalid_parameter_value(str(error)) from error


def publish_for_serving(
    reid_model: dict[str, Any], gallery_index: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Unversioned copies of this run's model and gallery for the logged MLflow model
    (kedro-mlflow packs a dataset's whole folder: every version of a versioned entry). The
    model copy carries its fingerprint, so the server hashes no weights per request."""
    fingerprint = model_fingerprint(reid_model)
    if gallery_index["fingerprint"] != fingerprint:
        raise ValueError("gallery_index was embedded by another model than reid_model: re-run "
                         "embed_gallery before publishing them together.")
    return {**reid_model, "fingerprint": fingerprint}, gallery_index


def _extractor(reid_model: dict[str, Any], batch_size: int) -> FeatureExtractor:
    """A new extractor, or for a published checkpoint (which names its fingerprint) the one
    built by the previous request."""
    fingerprint = reid_model.get("fingerprint")
    if fingerprint is None:
        return FeatureExtractor(reid_model, batch_size=batch_size)
    key = (fingerprint, int(batch_size))
    if key not in _served_extractor:
        _served_extractor.clear()
        _served_extractor[key] = FeatureExtractor(reid_model, batch_size=batch_size)
    return _served_extractor[key]


def _query_names(query_images: pd.DataFrame) -> list[str]:
    """The caller's names where given, else "query <row>" (row in the request or folder)."""
    given = query_images["name"].tolist() if "name" in query_images else [None] * len(query_images)
    return [name if isinstance(name, str) and name else f"query {row}"
            for row, name in enumerate(given)]


def _text_rows(query_images: pd.DataFrame, names: list[str]) -> pd.Series:
    """Which rows are text queries; a row must carry exactly one of ``image`` and ``text``."""
    def given(column: str) -> pd.Series:
        if column not in query_images:
            return pd.Series(False, index=query_images.index)
        return query_images[column].map(lambda value: value is not None and value == value)

    has_image, has_text = given("image"), given("text")
    both = [name for name, flag in zip(names, has_image & has_text, strict=True) if flag]
    neither = [name for name, flag in zip(names, ~has_image & ~has_text, strict=True) if flag]
    if both or neither:
        raise ValueError(
            "Every query needs exactly one of 'image' and 'text': "
            + "; ".join(filter(None, [both and f"both given for {', '.join(both)}",
                                      neither and f"neither given for {', '.join(neither)}"])))
    return has_text


def _decoded(items: list[Any], names: list[str], allow_paths: bool,
             max_pixels: int | None) -> list[Image.Image]:
    """Every query decoded, or one error naming each bad one (not only the first)."""
    images, errors = [], []
    for item, name in zip(items, names, strict=True):
        try:
            images.append(decode_image(item, name, allow_paths=allow_paths,
                                       max_pixels=max_pixels))
        except InvalidImageError as error:
            errors.append(str(error))
    if errors:
        raise InvalidImageError(f"{len(errors)} of {len(items)} query image(s) are unusable: "
                                + " | ".join(errors))
    return images
