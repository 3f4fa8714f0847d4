"""Nodes of data_ingestion: obtain the dataset, index it with its layout's parser, summarise."""

from __future__ import annotations

from typing import Any

import pandas as pd

from clip_reid.data.image_index import dataset_statistics, format_statistics
from clip_reid.data.ingestion_log import log_ingestion
from clip_reid.data.layouts import get_layout, parse_layout
from clip_reid.data.obtain import obtain_dataset
from clip_reid.data.settings import DatasetSettings, IngestionSettings


def prepare_dataset(dataset: dict[str, Any]) -> str:
    """Make sure the dataset exists in its layout; its root makes later nodes depend on this."""
    return str(obtain_dataset(DatasetSettings.from_params(dataset, "dataset")))


def index_images(
    dataset_root: str, dataset: dict[str, Any], ingestion: dict[str, Any]
) -> tuple[pd.DataFrame, dict]:
    """Index every usable crop; log and return what was left out and why."""
    data = DatasetSettings.from_params(dataset, "dataset")
    settings = IngestionSettings.from_params(ingestion, "ingestion")
    layout = get_layout(data.name)
    index, report = parse_layout(layout.name, dataset_root, data.variant,
                                 verify_images=settings.verify_images,
                                 num_workers=settings.num_workers,
                                 progress_every_s=settings.progress_every_s)
    log_ingestion(index, report, layout, dataset_root)
    summary = {"layout": layout.name, "variant": data.variant, "class_word": layout.class_word}
    return index, summary | report.to_dict()


def summarise_dataset(image_index: pd.DataFrame, dataset: dict[str, Any]) -> tuple[pd.DataFrame,
                                                                                    dict]:
    """Per-split statistics as a table (printed, saved) and as MLflow metrics (data/train_ids)."""
    data = DatasetSettings.from_params(dataset, "dataset")
    stats = dataset_statistics(image_index)
    name = " ".join(filter(None, [data.name, data.variant]))
    print(format_statistics(stats, f"{name} statistics"), flush=True)  # rich would re-wrap it
    return stats, {
        f"{row.subset}_{short}": {"value": float(getattr(row, column)), "step": 0}
        for row in stats.itertuples()
        for column, short in (("num_ids", "ids"), ("num_images", "images"),
                              ("num_cameras", "cameras"))
    }
