"""Open-set identification of a batch of queries (images and/or descriptions) against a labelled
gallery: what `kedro run --pipelines inference` and the served model answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from PIL import Image

from clip_reid.inference.extractor import FeatureExtractor
from clip_reid.inference.gallery_filter import GalleryFilter
from clip_reid.inference.gallery_store import Gallery
from clip_reid.inference.images import (
    DEFAULT_MAX_PIXELS,
    InvalidImageError,
    PixelBudget,
    RequestTooLargeError,
    decode_image,
)

CHUNK_PIXELS = DEFAULT_MAX_PIXELS  # decoded pixels held at once (about 50 MB of RGB)

# Optional per-query filter fields: cameras ("3;4;5"), time window [time_from, time_to] seconds.
FILTER_COLUMNS = ("cameras", "time_from", "time_to")


def identify(
    queries: pd.DataFrame, extractor: FeatureExtractor, gallery: Gallery,
    threshold: float | None, top_k: int, allow_paths: bool = True,
    max_pixels: int | None = DEFAULT_MAX_PIXELS, max_request_pixels: int | None = None,
) -> pd.DataFrame:
    """One row per query: ``name``, ``predicted_pid`` (or UNKNOWN_PID when the nearest gallery
    image is farther than ``threshold``), ``known``, ``distance`` and the top-k pids, paths
    and distances. ``queries`` has, per row, ``image`` (path or base64) or ``text`` (a
    description, searched against the gallery's projection features), and optional ``name``,
    ``camid`` (needed by camera-aware models) and the filter fields ``cameras``, ``time_from``,
    ``time_to`` (only those gallery crops answer). Text answers use 1 - cosine similarity and are
    never unknown: ``threshold`` is calibrated for image-to-image distances. ``allow_paths``
    False refuses file paths (a server must not open the files its clients name);
    ``max_request_pixels`` caps the pixels of all images together (None: no cap). Images are
    decoded and embedded a chunk at a time, so memory holds one chunk of decoded pixels, not
    every query's."""
    if "image" not in queries and "text" not in queries:
        raise ValueError("query_images needs an 'image' column (a file path or base64 string) "
                         "or a 'text' column (a description of the person).")
    if queries.empty:
        raise ValueError("No query image was given.")
    extractor.checkpoint.require_model(
        gallery.fingerprint, "The gallery",
        "re-embed it with this model (kedro run --pipelines inference does it).")
    names = _query_names(queries)
    is_text = _text_rows(queries, names)
    filters = pd.Series(_row_filters(queries), index=queries.index)
    parts = []
    if (~is_text).any():
        rows = queries[~is_text]
        image_names = [name for name, text in zip(names, is_text, strict=True) if not text]
        camids = rows["camid"].tolist() if "camid" in rows else None
        budget = None if max_request_pixels is None else PixelBudget(max_request_pixels)
        features = _embedded(rows["image"].tolist(), image_names, camids, extractor,
                             _Decoding(allow_paths, max_pixels, budget))
        parts += _searched(lambda f, w: gallery.search(f, top_k, threshold, where=w),
                           features, filters[~is_text])
    if is_text.any():
        texts = queries.loc[is_text, "text"].tolist()
        text_names = [name for name, text in zip(names, is_text, strict=True) if text]
        parts += _searched(lambda f, w: gallery.search_text(f, top_k, where=w),
                           extractor.encode_text(texts, names=text_names), filters[is_text])
    found = pd.concat(parts).loc[queries.index].reset_index(drop=True)
    found.insert(0, "name", names)
    return found


def _row_filters(queries: pd.DataFrame) -> list[GalleryFilter | None]:
    """Each query's filter from its optional ``cameras``/``time_from``/``time_to`` fields."""
    if not any(column in queries for column in FILTER_COLUMNS):
        return [None] * len(queries)
    given = [queries[column].tolist() if column in queries else [None] * len(queries)
             for column in FILTER_COLUMNS]
    return [GalleryFilter.from_fields(*fields) for fields in zip(*given, strict=True)]


def _searched(search: Callable[[Any, GalleryFilter | None], pd.DataFrame],
              features: Any, filters: pd.Series) -> list[pd.DataFrame]:
    """``search`` once per distinct filter, each frame indexed by its queries' rows."""
    parts = []
    for where in dict.fromkeys(filters.tolist()):
        positions = [pos for pos, value in enumerate(filters.tolist()) if value == where]
        found = search(features[positions], where)
        parts.append(found.set_axis(filters.index[positions]))
    return parts


def _query_names(queries: pd.DataFrame) -> list[str]:
    """The caller's names where given, else "query <row>" (row in the request or folder)."""
    given = queries["name"].tolist() if "name" in queries else [None] * len(queries)
    return [name if isinstance(name, str) and name else f"query {row}"
            for row, name in enumerate(given)]


def _text_rows(queries: pd.DataFrame, names: list[str]) -> pd.Series:
    """Which rows are text queries; a row must carry exactly one of ``image`` and ``text``."""
    def given(column: str) -> pd.Series:
        if column not in queries:
            return pd.Series(False, index=queries.index)
        return queries[column].map(lambda value: value is not None and value == value)

    has_image, has_text = given("image"), given("text")
    both = [name for name, flag in zip(names, has_image & has_text, strict=True) if flag]
    neither = [name for name, flag in zip(names, ~has_image & ~has_text, strict=True) if flag]
    if both or neither:
        raise ValueError(
            "Every query needs exactly one of 'image' and 'text': "
            + "; ".join(filter(None, [both and f"both given for {', '.join(both)}",
                                      neither and f"neither given for {', '.join(neither)}"])))
    return has_text


@dataclass(frozen=True)
class _Decoding:
    """How query images are decoded: paths allowed or not, and the pixel limits."""

    allow_paths: bool
    max_pixels: int | None
    budget: PixelBudget | None

    def __call__(self, item: Any, name: str) -> Image.Image:
        return decode_image(item, name, allow_paths=self.allow_paths,
                            max_pixels=self.max_pixels, budget=self.budget)


def _embedded(items: list[Any], names: list[str], camids: list[int] | None,
              extractor: FeatureExtractor, decode: _Decoding) -> torch.Tensor:
    """Features of every query image, decoded and embedded a chunk at a time (up to
    CHUNK_PIXELS decoded pixels, or one batch); or one error naming each bad image (not only the
    first). A request over its pixel budget stops at once."""
    chunks: list[torch.Tensor] = []
    pending: list[tuple[int, Image.Image]] = []
    errors = []
    for position, (item, name) in enumerate(zip(items, names, strict=True)):
        try:
            image = decode(item, name)
        except RequestTooLargeError:
            raise
        except InvalidImageError as error:
            errors.append(str(error))
            continue
        if errors:  # no more embedding: the remaining images are only checked
            continue
        pending.append((position, image))
        if (sum(im.width * im.height for _, im in pending) >= CHUNK_PIXELS
                or len(pending) >= extractor.batch_size):
            chunks.append(_embed(pending, camids, extractor))
            pending = []
    if errors:
        raise InvalidImageError(f"{len(errors)} of {len(items)} query image(s) are unusable: "
                                + " | ".join(errors))
    if pending:
        chunks.append(_embed(pending, camids, extractor))
    return torch.cat(chunks)


def _embed(pending: list[tuple[int, Image.Image]], camids: list[int] | None,
           extractor: FeatureExtractor) -> torch.Tensor:
    cameras = None if camids is None else [camids[position] for position, _ in pending]
    return extractor([image for _, image in pending], cameras)
