"""Readers that turn a dataset's text sources into one caption table (path, pid, caption, source).

Sources: CUHK-PEDES annotations (``reid_raw.json``), identity attribute sentences, and a user CSV
(file name, caption). All are matched to the image index by file name, so they work for any
dataset in Market-1501 layout.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd

from clip_reid.data.splits import select_split

logger = logging.getLogger(__name__)

CAPTION_COLUMNS = ["path", "pid", "caption", "source"]


class CaptionSourceError(ValueError):
    """A caption file is malformed; the message names the file and the record."""


def _index_by_name(image_index: pd.DataFrame) -> pd.DataFrame:
    names = image_index.assign(file_name=image_index["path"].map(lambda p: Path(p).name))
    return names[["file_name", "path", "pid"]]


def _match(image_index: pd.DataFrame, captions: pd.DataFrame, source: str) -> pd.DataFrame:
    """Attach captions keyed by ``file_name`` to the indexed images of that name.

    A name shared by images of different identities (MSMT17 reuses names across train/ and
    test/) cannot say which one a caption describes: such captions are skipped with a warning.
    """
    names = _index_by_name(image_index)
    pids_per_name = names.groupby("file_name")["pid"].nunique()
    ambiguous = sorted(set(pids_per_name.index[pids_per_name > 1]) & set(captions["file_name"]))
    if ambiguous:
        logger.warning("%s captions: %d file names belong to several identities in the index "
                       "(e.g. %s); their captions are skipped", source, len(ambiguous),
                       ambiguous[:3])
        captions = captions[~captions["file_name"].isin(ambiguous)]
    matched = names.merge(captions, on="file_name", how="inner")
    return matched.assign(source=source)[CAPTION_COLUMNS]


def _read_text(path: Path, what: str) -> str:
    """The file's UTF-8 text; a clear error naming the file when it is unreadable or empty."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as error:
        raise CaptionSourceError(f"Cannot read {what} {path}: {error}") from error
    except UnicodeDecodeError as error:
        raise CaptionSourceError(
            f"{what} {path} is not UTF-8 text ({error}); re-save it as UTF-8."
        ) from error
    if not text.strip():
        raise CaptionSourceError(f"{what} {path} is empty.")
    return text


def _record_captions(path: Path, number: int, record: object) -> list[str]:
    """The captions of one CUHK-PEDES record: a list of strings, or an error naming the record."""
    if not isinstance(record, Mapping) or not isinstance(record.get("file_path"), str) \
            or not isinstance(record.get("captions"), list):
        raise CaptionSourceError(
            f"{path}, record {number}: expected keys 'file_path' (str) and 'captions' (list), "
            f"got {str(record)[:200]}"
        )
    for position, caption in enumerate(record["captions"]):
        if not isinstance(caption, str):
            raise CaptionSourceError(
                f"{path}, record {number}, caption {position}: expected a string, got "
                f"{json.dumps(caption)[:100]}"
            )
    return [caption.strip() for caption in record["captions"]]


def read_cuhk_pedes(path: Path | str, image_index: pd.DataFrame) -> pd.DataFrame:
    """Captions from CUHK-PEDES ``reid_raw.json`` (records with ``file_path`` and ``captions``)."""
    path = Path(path)
    try:
        records = json.loads(_read_text(path, "CUHK-PEDES annotations"))
    except json.JSONDecodeError as error:
        raise CaptionSourceError(f"Cannot read CUHK-PEDES annotations {path}: {error}") from error
    if not isinstance(records, list):
        raise CaptionSourceError(f"{path}: expected a JSON list of records, got {type(records)}.")
    rows = [
        {"file_name": Path(record["file_path"]).name, "caption": caption}
        for number, record in enumerate(records)
        for caption in _record_captions(path, number, record)
    ]
    captions = pd.DataFrame(rows, columns=["file_name", "caption"])
    blank = int((captions["caption"] == "").sum())
    if blank:
        logger.warning("%s: %d blank caption(s) skipped", path, blank)
    return _match(image_index, captions[captions["caption"] != ""], "cuhk_pedes")


def read_caption_csv(path: Path | str, image_index: pd.DataFrame) -> pd.DataFrame:
    """Captions from a user CSV with columns ``image`` (file name) and ``caption``."""
    path = Path(path)
    try:
        table = pd.read_csv(io.StringIO(_read_text(path, "Caption CSV")), dtype=str,
                            keep_default_na=False)
    except pd.errors.ParserError as error:
        raise CaptionSourceError(f"Cannot read caption CSV {path}: {error}") from error
    missing = {"image", "caption"} - set(table.columns)
    if missing:
        raise CaptionSourceError(
            f"{path}: missing column(s) {sorted(missing)}; expected a header 'image,caption' "
            f"(got {list(table.columns)})."
        )
    empty = table.index[table["caption"].str.strip() == ""].tolist()
    if empty:
        raise CaptionSourceError(f"{path}: empty caption on data row(s) {[i + 1 for i in empty]}.")
    captions = pd.DataFrame(
        {"file_name": table["image"].map(lambda p: Path(p).name), "caption": table["caption"]}
    )
    return _match(image_index, captions, "csv")


def attribute_captions(
    attributes: pd.DataFrame,
    image_index: pd.DataFrame,
    sentences: Callable[[Mapping[str, int]], list[str]],
) -> pd.DataFrame:
    """Every image of an annotated identity gets that identity's attribute sentences.

    ``attributes`` has one row per identity (``pid`` plus attribute codes); train and test
    identities of Market-1501 are disjoint, so the pid alone identifies the person.
    """
    per_pid = {
        int(row["pid"]): sentences({k: v for k, v in row.items() if k not in ("pid", "split")})
        for row in attributes.to_dict("records")
    }
    rows = [
        {"path": path, "pid": pid, "caption": caption, "source": "attributes"}
        for path, pid in zip(image_index["path"], image_index["pid"], strict=True)
        for caption in per_pid.get(int(pid), [])
    ]
    return pd.DataFrame(rows, columns=CAPTION_COLUMNS)


def caption_coverage(image_index: pd.DataFrame, captions: pd.DataFrame) -> pd.DataFrame:
    """Images and identities with at least one caption, per source and split (and overall)."""
    split_of = dict(zip(image_index["path"], image_index["split"], strict=True))
    labelled = captions.assign(split=captions["path"].map(split_of))
    rows = []
    for source, part in [*labelled.groupby("source"), ("all", labelled)]:
        for split, images in image_index.groupby("split", sort=False):
            covered = part[part["split"] == split]
            rows.append(
                {
                    "source": source,
                    "split": split,
                    "images_covered": int(covered["path"].nunique()),
                    "images_total": len(images),
                    "ids_covered": int(covered["pid"].nunique()),
                    "ids_total": int(images["pid"].nunique()),
                }
            )
    coverage = pd.DataFrame(rows)
    coverage["image_coverage"] = coverage["images_covered"] / coverage["images_total"]
    return coverage


def training_pairs(image_index: pd.DataFrame, image_captions: pd.DataFrame) -> pd.DataFrame:
    """(path, caption) pairs of training images only: test captions must not leak into training."""
    train_paths = select_split(image_index, "train")["path"]
    pairs = image_captions[image_captions["path"].isin(train_paths)]
    return pairs.sort_values(["path", "caption"]).reset_index(drop=True)
