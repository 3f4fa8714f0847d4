"""Nodes of data_ingestion: obtain the dataset, index its crops, summarise it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from clip_reid.data.download import fetch_dataset
from clip_reid.data.market import (
    build_image_index,
    check_layout,
    dataset_statistics,
    format_statistics,
)
from clip_reid.data.synthetic import SyntheticConfig, ensure_synthetic_market

logger = logging.getLogger(__name__)

SOURCES = ("synthetic", "download", "local")


def prepare_dataset(dataset: dict[str, Any]) -> str:
    """Make sure the dataset folder exists: generate the demo set, download, or check a local copy.

    Returns the dataset root so later nodes depend on this one having run.
    """
    root = Path(dataset["root"])
    source = dataset.get("source", "local")
    if source == "synthetic":
        ensure_synthetic_market(root, SyntheticConfig(**dataset.get("synthetic", {})))
    elif source == "download":
        download = dataset.get("download") or {}
        if not download.get("url"):
            raise ValueError(
                "dataset.source is 'download' but dataset.download.url is empty: set the archive "
                "URL (and dataset.download.sha256) in your environment's parameters, or download "
                f"the dataset yourself, unzip it to {root} and set dataset.source: local."
            )
        cache_dir = Path(download.get("cache_dir") or root.parent)
        fetch_dataset(download["url"], download.get("sha256"), root, cache_dir)
    elif source == "local":
        check_layout(root)
    else:
        raise ValueError(f"dataset.source must be one of {SOURCES}, got {source!r}.")
    return str(root)


def index_images(dataset_root: str, ingestion: dict[str, Any]) -> tuple[pd.DataFrame, dict]:
    """Index every usable crop; log and return what was left out and why."""
    index, report = build_image_index(
        dataset_root,
        verify_images=ingestion.get("verify_images", True),
        num_workers=ingestion.get("num_workers", 2),
    )
    left_out = {
        "junk (pid -1) dropped": sum(report.junk_dropped.values()),
        "non-image files ignored": sum(report.non_images_ignored.values()),
        "names not matching PPPP_cCsS_FFFFFF_NN": len(report.bad_names),
        "unreadable images excluded": len(report.unreadable),
    }
    logger.info(
        "Ingested %d images from %s; left out: %s", len(index), dataset_root,
        ", ".join(f"{count} {what}" for what, count in left_out.items()),
    )
    for problem in report.bad_names[:10]:
        logger.warning("Skipped (name does not follow the Market-1501 pattern): %s", problem)
    for problem in report.unreadable[:10]:
        logger.warning("Excluded unreadable image %s (%s)", problem["path"], problem["error"])
    for warning in report.warnings:
        logger.warning(warning)
    return index, report.to_dict()


def summarise_dataset(image_index: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Per-split statistics as a table (printed, saved) and as MLflow metrics."""
    stats = dataset_statistics(image_index)
    print(format_statistics(stats), flush=True)  # a table: rich logging would re-wrap it
    metrics = {
        f"{row.subset}.{column}": {"value": float(getattr(row, column)), "step": 0}
        for row in stats.itertuples()
        for column in ("num_ids", "num_images", "num_cameras")
    }
    return stats, metrics
