"""Nodes of captions: read every configured text source and measure its coverage."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from clip_reid.data.attribute_sentences import attribute_sentences
from clip_reid.data.attributes import read_attribute_mat
from clip_reid.data.caption_sources import (
    CAPTION_COLUMNS,
    attribute_captions,
    caption_coverage,
    read_caption_csv,
    read_cuhk_pedes,
)

logger = logging.getLogger(__name__)

ATTRIBUTE_FILE = "market_attribute.mat"


def _attribute_file(setting: str, dataset_root: Path) -> Path:
    """``beside_dataset`` means the file the demo generator writes next to its images."""
    return dataset_root / ATTRIBUTE_FILE if setting == "beside_dataset" else Path(setting)


def _require(path: Path, what: str, key: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(
            f"{what} not found: {path}. Set captions.sources.{key} to its path, or to null to "
            "go without this source."
        )
    return path


def collect_captions(
    image_index: pd.DataFrame, dataset: dict[str, Any], captions: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Read each configured source (CUHK-PEDES JSON, attribute file, CSV) into one table."""
    sources = captions.get("sources") or {}
    root = Path(dataset["root"])
    tables = []
    if sources.get("cuhk_pedes"):
        path = _require(Path(sources["cuhk_pedes"]), "CUHK-PEDES annotations", "cuhk_pedes")
        tables.append(read_cuhk_pedes(path, image_index))
    if sources.get("attributes"):
        path = _require(
            _attribute_file(sources["attributes"], root), "Attribute file", "attributes"
        )
        attributes = read_attribute_mat(path)
        tables.append(attribute_captions(attributes, image_index, attribute_sentences))
    if sources.get("csv"):
        path = _require(Path(sources["csv"]), "Caption CSV", "csv")
        tables.append(read_caption_csv(path, image_index))
    empty = pd.DataFrame(columns=CAPTION_COLUMNS)
    table = pd.concat(tables, ignore_index=True) if tables else empty
    coverage = caption_coverage(image_index, table)
    for row in coverage.itertuples():
        logger.info(
            "Captions %-10s %-7s: %d/%d images (%.1f%%), %d/%d identities", row.source, row.split,
            row.images_covered, row.images_total, 100 * row.image_coverage, row.ids_covered,
            row.ids_total,
        )
    metrics = {
        f"{row.source}.{row.split}.image_coverage": {
            "value": float(row.image_coverage), "step": 0,
        }
        for row in coverage.itertuples()
    }
    return table, coverage, metrics
