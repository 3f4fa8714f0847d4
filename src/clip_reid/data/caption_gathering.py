"""Every configured caption source (CUHK-PEDES JSON, attribute file, CSV) as one table."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from clip_reid.data.attribute_sentences import attribute_sentences
from clip_reid.data.attributes import read_attribute_mat
from clip_reid.data.caption_sources import (
    CAPTION_COLUMNS,
    attribute_captions,
    read_caption_csv,
    read_cuhk_pedes,
)
from clip_reid.data.synthetic import ATTRIBUTE_FILE
from clip_reid.text_limits import MAX_TEXT_CHARS, MAX_WORD_CHARS, capped

logger = logging.getLogger(__name__)


def gather_captions(image_index: pd.DataFrame, dataset_root: Path, cuhk_pedes: str | None,
                    attributes: str | None, csv: str | None) -> pd.DataFrame:
    """The captions of every source that is set (``attributes: beside_dataset`` is skipped with
    one INFO line when the dataset has no attribute file; a path given must exist)."""
    tables = []
    if cuhk_pedes:
        path = _require(Path(cuhk_pedes), "CUHK-PEDES annotations", "cuhk_pedes")
        tables.append(read_cuhk_pedes(path, image_index))
    attribute_file = attributes and _attribute_file(attributes, dataset_root)
    if attribute_file:
        tables.append(attribute_captions(read_attribute_mat(attribute_file), image_index,
                                         attribute_sentences))
    if csv:
        tables.append(read_caption_csv(_require(Path(csv), "Caption CSV", "csv"), image_index))
    if not tables:
        return pd.DataFrame(columns=CAPTION_COLUMNS)
    return _within_caps(pd.concat(tables, ignore_index=True))


def _within_caps(table: pd.DataFrame) -> pd.DataFrame:
    """Captions cut to the text caps (the tokenizer's time is quadratic in word length; the
    text tower reads 75 tokens anyway), with one INFO line counting them."""
    cut = table["caption"].map(capped)
    changed = int((cut != table["caption"]).sum())
    if changed:
        logger.info("%d of %d captions were cut to %d characters (words to %d) before "
                    "tokenising", changed, len(table), MAX_TEXT_CHARS, MAX_WORD_CHARS)
    return table.assign(caption=cut)


def _attribute_file(setting: str, dataset_root: Path) -> Path | None:
    """``beside_dataset``: the file the demo generator (and Market-1501's annotators) put in the
    dataset folder, skipped when absent; any other value is a path that must exist."""
    if setting != "beside_dataset":
        return _require(Path(setting), "Attribute file", "attributes")
    folder = dataset_root if dataset_root.is_dir() else dataset_root.parent  # image_list: a CSV
    path = folder / ATTRIBUTE_FILE
    if path.is_file():
        return path
    logger.info("No attribute captions: no %s in %s (captions.sources.attributes: beside_dataset "
                "looks there; set a path to use one elsewhere)", ATTRIBUTE_FILE, folder)
    return None


def _require(path: Path, what: str, key: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(
            f"{what} not found: {path}. Set captions.sources.{key} to its path, or to null to "
            "go without this source."
        )
    return path
