"""Nodes of data_ingestion: obtain the dataset, index it with its layout's parser, summarise."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from clip_reid.data.download import fetch_dataset
from clip_reid.data.image_index import dataset_statistics, format_statistics
from clip_reid.data.layouts import get_layout, parse_layout
from clip_reid.data.synthetic import SyntheticConfig, ensure_synthetic_market

logger = logging.getLogger(__name__)

SOURCES = ("synthetic", "download", "local")
SYNTHETIC_LAYOUTS = ("demo", "market1501")


def prepare_dataset(dataset: dict[str, Any]) -> str:
    """Make sure the dataset exists in its layout: generate the demo set, download, or check it.

    Returns the dataset root so later nodes depend on this one having run.
    """
    layout = get_layout(dataset.get("name", "market1501"))
    root = Path(dataset["root"])
    variant = dataset.get("variant")
    source = dataset.get("source", "local")
    if source == "synthetic":
        if layout.name not in SYNTHETIC_LAYOUTS:
            raise ValueError(
                f"dataset.source 'synthetic' writes the demo in Market-1501 layout, but "
                f"dataset.name is {layout.name!r}: set dataset.name to demo, or dataset.source to "
                "local (or download) for a real dataset."
            )
        ensure_synthetic_market(root, SyntheticConfig(**dataset.get("synthetic", {})))
    elif source == "download":
        download = dataset.get("download") or {}
        if not download.get("url"):
            raise ValueError(
                "dataset.source is 'download' but dataset.download.url is empty: set the archive "
                "URL (and dataset.download.sha256) in your environment's parameters, or download "
                f"the dataset yourself, unzip it to {root} and set dataset.source: local."
            )
        if layout.name == "image_list":
            raise ValueError("dataset.name image_list reads your own CSV: set dataset.source: "
                             "local and dataset.root to the CSV file.")
        cache_dir = Path(download.get("cache_dir") or root.parent)
        fetch_dataset(download["url"], download.get("sha256"), root, cache_dir,
                      check=lambda folder: layout.check(folder, variant))
    elif source == "local":
        layout.check(root, variant)
    else:
        raise ValueError(f"dataset.source must be one of {SOURCES}, got {source!r}.")
    return str(root)


def index_images(
    dataset_root: str, dataset: dict[str, Any], ingestion: dict[str, Any]
) -> tuple[pd.DataFrame, dict]:
    """Index every usable crop; log and return what was left out and why."""
    layout = get_layout(dataset.get("name", "market1501"))
    index, report = parse_layout(
        layout.name, dataset_root, dataset.get("variant"),
        verify_images=ingestion.get("verify_images", True),
        num_workers=ingestion.get("num_workers", 2),
        progress_every_s=ingestion.get("progress_every_s", 10.0),
    )
    left_out = {
        "junk (pid -1) dropped": sum(report.junk_dropped.values()),
        "non-image files ignored": sum(report.non_images_ignored.values()),
        f"names not matching {layout.name_pattern}": len(report.bad_names),
        "broken symlinks": len(report.broken_links),
        "listed files missing": len(report.missing_files),
        "unreadable images excluded": len(report.unreadable),
    }
    logger.info(
        "Ingested %d images from %s (layout %s); left out: %s", len(index), dataset_root,
        layout.name, ", ".join(f"{count} {what}" for what, count in left_out.items()),
    )
    for problem in report.bad_names[:10]:
        logger.warning("Skipped (name does not follow %s): %s", layout.name_pattern, problem)
    for problem in report.broken_links[:10]:
        logger.warning("Skipped broken or looping symlink: %s", problem)
    for problem in report.missing_files[:10]:
        logger.warning("Skipped listed file that does not exist: %s", problem)
    for problem in report.unreadable[:10]:
        logger.warning("Excluded unreadable image %s (%s)", problem["path"], problem["error"])
    for warning in report.warnings:
        logger.warning(warning)
    if layout.class_word != "person":
        logger.info("Layout %s shows %ss: set prompt_learning.class_word: %s so stage 1 learns "
                    "'A photo of a X X X X %s.'", layout.name, layout.class_word,
                    layout.class_word, layout.class_word)
    summary = {"layout": layout.name, "variant": dataset.get("variant"),
               "class_word": layout.class_word}
    return index, summary | report.to_dict()


def summarise_dataset(image_index: pd.DataFrame, dataset: dict[str, Any]) -> tuple[pd.DataFrame,
                                                                                    dict]:
    """Per-split statistics as a table (printed, saved) and as MLflow metrics."""
    stats = dataset_statistics(image_index)
    name = " ".join(filter(None, [dataset.get("name", "market1501"), dataset.get("variant")]))
    print(format_statistics(stats, f"{name} statistics"), flush=True)  # rich would re-wrap it
    metrics = {
        f"{row.subset}.{column}": {"value": float(getattr(row, column)), "step": 0}
        for row in stats.itertuples()
        for column in ("num_ids", "num_images", "num_cameras")
    }
    return stats, metrics
