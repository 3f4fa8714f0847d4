"""Which images inference works on: the query images of a folder, and the labelled gallery (the
ingested dataset's gallery split, or the gallery split of another dataset in any layout the
ingestion reads, an image_list CSV included), with a timestamp per crop for time-window filters
and retention."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clip_reid.data.image_index import IMAGE_SUFFIXES, find_unreadable_images
from clip_reid.data.image_list import TIMESTAMP
from clip_reid.data.ingestion_log import log_ingestion
from clip_reid.data.layouts import get_layout, read_split
from clip_reid.data.settings import DatasetRef
from clip_reid.inference.gallery import UNKNOWN_TIME
from clip_reid.settings_base import Locator, SettingsError, setting

logger = logging.getLogger(__name__)

GALLERY_COLUMNS = ["path", "pid", "camid", "timestamp"]
STORES = ("faiss", "milvus")
# Datasets without real capture times: a crop's timestamp is its frame number at Market-1501's
# 25 frames/s, i.e. seconds into its camera's recording.
FRAMES_PER_SECOND = 25.0


# Spellings of inference.gallery that are gone, and what replaced them.
RENAMED = {
    "labels_csv": "a gallery CSV is an image_list now: inference.gallery.name=image_list,"
                  "inference.gallery.root=<the CSV> (columns image,pid,camid,split[,timestamp]; "
                  "its split=gallery rows are the gallery)",
}


@dataclass(frozen=True)
class GallerySettings(DatasetRef):
    """``inference.gallery``: which dataset's gallery split (a dataset reference: ``root`` null =
    the ingested dataset's) and where its features are kept."""

    store: str = setting("faiss", choices=STORES)  # faiss (in process) | milvus (gallery_store)
    # The Milvus uri; read by the catalog's gallery_store entry (runtime_params), so it is set on
    # the command line; None = the milvus-lite file under data/07_model_output/.
    uri: str | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None, where: str = "",
                    locate: Locator | None = None) -> GallerySettings:
        """As Settings.from_params; a key of the old spelling names its replacement."""
        for old in sorted(set(params or {}) & set(RENAMED)):
            raise SettingsError(f"{where or 'inference.gallery'}.{old} is no longer a "
                                f"parameter: {RENAMED[old]}.")
        return super().from_params(params, where, locate)


def folder_queries(folder: Path) -> pd.DataFrame:
    """Every readable image under ``folder`` (any names, sub-folders too) as ``image, name``
    (name: the path below ``folder``). Non-image files and images that fail to decode are
    skipped and reported, so one stray file does not stop a batch."""
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


def gallery_images(settings: DatasetRef, image_index: pd.DataFrame) -> pd.DataFrame:
    """The labelled gallery (``path, pid, camid, timestamp``): the gallery split of the dataset
    ``settings`` refers to, read by its layout's parser (left-out files logged), else that of
    ``image_index`` (the ingested dataset)."""
    if settings.is_set:
        layout = get_layout(settings.layout_name)
        gallery, report = read_split(layout.name, settings.root, settings.variant, "gallery")
        log_ingestion(gallery, report, layout, settings.root)
        source = f"{settings.root} (layout {layout.name})"
    else:
        gallery = image_index.loc[image_index["split"] == "gallery"].reset_index(drop=True)
        source = "the ingested dataset (image_index)"
    frame = gallery.assign(timestamp=frame_timestamps(gallery))[GALLERY_COLUMNS]
    if frame.empty:
        raise ValueError(f"The gallery {source} is empty: it needs labelled images to match.")
    logger.info("Gallery: %d images of %d identities from %s.", len(frame),
                frame["pid"].nunique(), source)
    return frame


def frame_timestamps(index: pd.DataFrame) -> pd.Series:
    """Seconds: the index's own capture times (an image_list's timestamp column), else from its
    frame numbers (see FRAMES_PER_SECOND), else unknown."""
    if TIMESTAMP in index:
        return index[TIMESTAMP].astype(np.float64)
    if "frame" not in index:
        return pd.Series(UNKNOWN_TIME, index=index.index)
    return index["frame"].astype(np.float64) / FRAMES_PER_SECOND
