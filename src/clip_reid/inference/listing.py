"""Which images inference works on: the query images of a folder, and the labelled gallery (the
ingested dataset's gallery split, another Market-layout dataset, or a labels CSV), with a
timestamp per crop for time-window filters and retention."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from clip_reid.data.market import IMAGE_SUFFIXES, build_image_index, find_unreadable_images
from clip_reid.inference.gallery import UNKNOWN_CAMID, UNKNOWN_TIME
from clip_reid.settings_base import Settings, setting

logger = logging.getLogger(__name__)

GALLERY_COLUMNS = ["path", "pid", "camid", "timestamp"]
STORES = ("faiss", "milvus")
# Datasets without real capture times: a crop's timestamp is its frame number at Market-1501's
# 25 frames/s, i.e. seconds into its camera's recording.
FRAMES_PER_SECOND = 25.0


@dataclass(frozen=True)
class GallerySettings(Settings):
    root: str | None = None  # a Market-layout dataset whose bounding_box_test/ is the gallery
    labels_csv: str | None = None  # or a CSV image,pid[,camid][,timestamp]; wins over root
    store: str = setting("faiss", choices=STORES)  # faiss (in process) | milvus (gallery_store)
    # The Milvus uri; read by the catalog's gallery_store entry (runtime_params), so it is set on
    # the command line; None = the milvus-lite file under data/07_model_output/.
    uri: str | None = None


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


def gallery_images(settings: GallerySettings, image_index: pd.DataFrame) -> pd.DataFrame:
    """The labelled gallery (``path, pid, camid``): the labels CSV if set, else the gallery
    split of the Market-layout dataset at ``root``, else that of ``image_index`` (the ingested
    dataset, parsed by its own layout)."""
    if settings.labels_csv:
        frame, source = labelled_images(Path(settings.labels_csv)), settings.labels_csv
    else:
        if settings.root:
            image_index, _ = build_image_index(settings.root, verify_images=False)
        source = settings.root or "the ingested dataset (image_index)"
        gallery = image_index.loc[image_index["split"] == "gallery"].reset_index(drop=True)
        frame = gallery.assign(timestamp=frame_timestamps(gallery))[GALLERY_COLUMNS]
    if frame.empty:
        raise ValueError(f"The gallery {source} is empty: it needs labelled images to match.")
    logger.info("Gallery: %d images of %d identities from %s.", len(frame),
                frame["pid"].nunique(), source)
    return frame


def frame_timestamps(index: pd.DataFrame) -> pd.Series:
    """Seconds from the frame numbers of an image index (see FRAMES_PER_SECOND)."""
    if "frame" not in index:
        return pd.Series(UNKNOWN_TIME, index=index.index)
    return index["frame"].astype(np.float64) / FRAMES_PER_SECOND


def labelled_images(csv: Path) -> pd.DataFrame:
    """Rows of a labels CSV (image, pid[, camid][, timestamp in epoch seconds]); image paths are
    relative to the CSV's folder."""
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
    camids = labels["camid"] if "camid" in labels else UNKNOWN_CAMID
    times = (pd.to_numeric(labels["timestamp"], errors="coerce") if "timestamp" in labels
             else UNKNOWN_TIME)
    return pd.DataFrame({"path": paths, "pid": pids.astype("int64"), "camid": camids,
                         "timestamp": times})
