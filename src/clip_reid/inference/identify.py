"""Open-set identification of a batch of queries (images and/or descriptions) against a labelled
gallery: what `kedro run --pipelines inference` and the served model answer."""

from __future__ import annotations

from typing import Any

import pandas as pd
from PIL import Image

from clip_reid.inference.extractor import FeatureExtractor
from clip_reid.inference.gallery import GalleryIndex
from clip_reid.inference.images import DEFAULT_MAX_PIXELS, InvalidImageError, decode_image


def identify(
    queries: pd.DataFrame, extractor: FeatureExtractor, gallery: GalleryIndex,
    threshold: float | None, top_k: int, allow_paths: bool = True,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> pd.DataFrame:
    """One row per query: ``name``, ``predicted_pid`` (or UNKNOWN_PID when the nearest gallery
    image is farther than ``threshold``), ``known``, ``distance`` and the top-k pids, paths
    and distances. ``queries`` has, per row, ``image`` (path or base64) or ``text`` (a
    description, searched against the gallery's projection features), and optional ``name``,
    ``camid`` (needed by camera-aware models). Text answers use 1 - cosine similarity and are
    never unknown: ``threshold`` is calibrated for image-to-image distances. ``allow_paths``
    False refuses file paths (a server must not open the files its clients name)."""
    if "image" not in queries and "text" not in queries:
        raise ValueError("query_images needs an 'image' column (a file path or base64 string) "
                         "or a 'text' column (a description of the person).")
    if queries.empty:
        raise ValueError("No query image was given.")
    if gallery.fingerprint != extractor.fingerprint:
        raise ValueError(
            f"The gallery was embedded by model {gallery.fingerprint}, not by this checkpoint "
            f"({extractor.fingerprint}): it comes from another model or backbone. Re-embed the "
            "gallery with this model (kedro run --pipelines inference does it)."
        )
    names = _query_names(queries)
    is_text = _text_rows(queries, names)
    parts = []
    if (~is_text).any():
        rows = queries[~is_text]
        image_names = [name for name, text in zip(names, is_text, strict=True) if not text]
        images = _decoded(rows["image"].tolist(), image_names, allow_paths, max_pixels)
        camids = rows["camid"].tolist() if "camid" in rows else None
        found = gallery.search(extractor(images, camids), k=top_k, threshold=threshold)
        parts.append(found.set_axis(rows.index))
    if is_text.any():
        texts = queries.loc[is_text, "text"].tolist()
        text_names = [name for name, text in zip(names, is_text, strict=True) if text]
        found = gallery.search_text(extractor.encode_text(texts, names=text_names), k=top_k)
        parts.append(found.set_axis(queries.index[is_text]))
    found = pd.concat(parts).loc[queries.index].reset_index(drop=True)
    found.insert(0, "name", names)
    return found


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
