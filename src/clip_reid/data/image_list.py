"""The user's own data as one CSV: ``dataset.name: image_list``, ``dataset.root`` the CSV file.

Columns ``image,pid,camid,split``: the image path (relative to the CSV's folder, or absolute),
the identity (an integer; -1 marks junk, dropped and counted; 0 is an ordinary identity), the
0-based camera, and the split (``train``, ``query`` or ``gallery``). An optional ``timestamp``
column (capture time in epoch seconds, empty when unknown) is kept for the time windows and
retention of an inference gallery read from the same kind of CSV (``inference.gallery.name:
image_list``: its ``split=gallery`` rows). For ingestion, query and gallery must come from at
least two cameras, as the protocol discards same-camera matches. Rows with values that are not
of this form stop ingestion with the row numbers; listed files that are missing or broken links
are counted and reported. There are no published statistics: the table printed by ingestion is
the dataset's own.
"""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import pandas as pd

from clip_reid.data.image_index import (
    IMAGE_SUFFIXES,
    JUNK_PID,
    SPLITS,
    DatasetLayoutError,
    IngestionReport,
    crop_row,
    is_broken_link,
)

COLUMNS = ("image", "pid", "camid", "split")
TIMESTAMP = "timestamp"  # optional column
_PID = re.compile(r"-1|\d{1,9}")
_CAMID = re.compile(r"\d{1,9}")
SPLIT_SOURCES = {split: f"rows with split={split}" for split in SPLITS}

EXPECTED_LAYOUT = """Expected a CSV image list (dataset.name: image_list, dataset.root: the CSV):
  image,pid,camid,split
  cam_a/person_0001_a.jpg,1,0,train
  cam_b/person_0002_b.jpg,2,1,query
image paths are relative to the CSV's folder; split is train, query or gallery; an optional
timestamp column gives capture times in epoch seconds (an inference gallery's time windows)."""


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        where = "is a folder" if path.is_dir() else "does not exist"
        raise DatasetLayoutError(f"Image list {path} {where}.\n{EXPECTED_LAYOUT}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
        table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except UnicodeDecodeError as error:
        raise DatasetLayoutError(f"Image list {path} is not UTF-8 text ({error}).") from error
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as error:
        raise DatasetLayoutError(f"Image list {path} is not a CSV: {error}\n{EXPECTED_LAYOUT}") \
            from error
    missing = [column for column in COLUMNS if column not in table.columns]
    if missing:
        raise DatasetLayoutError(
            f"Image list {path} lacks column(s) {missing} (has {list(table.columns)}).\n"
            + EXPECTED_LAYOUT
        )
    return table


def _bad_rows(table: pd.DataFrame) -> list[str]:
    """One message per malformed row (CSV line numbers, the header being line 1)."""
    problems = []
    for number, row in enumerate(table.itertuples(index=False), start=2):
        reasons = []
        if not row.image.strip():
            reasons.append("empty image")
        if not _PID.fullmatch(row.pid.strip()):
            reasons.append(f"pid {row.pid!r} is not -1 or an integer 0..999999999")
        if not _CAMID.fullmatch(row.camid.strip()):
            reasons.append(f"camid {row.camid!r} is not an integer 0..999999999")
        if row.split.strip() not in SPLITS:
            reasons.append(f"split {row.split!r} is not one of {SPLITS}")
        if _timestamp(getattr(row, TIMESTAMP, "")) is None:
            reasons.append(f"timestamp {getattr(row, TIMESTAMP)!r} is not a number of seconds")
        if reasons:
            problems.append(f"line {number}: {', '.join(reasons)}")
    return problems


def _timestamp(text: str) -> float | None:
    """Seconds, NaN when empty (unknown), None when not a finite number."""
    if not text.strip():
        return math.nan
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def check(root: Path) -> None:
    """The CSV exists, reads, and has the four columns with valid values."""
    table = _read(root)
    problems = _bad_rows(table)
    if problems:
        shown = "; ".join(problems[:10]) + (f"; ... ({len(problems)} rows)" if
                                            len(problems) > 10 else "")
        raise DatasetLayoutError(f"Image list {root}: {shown}\n{EXPECTED_LAYOUT}")


def scan(root: Path, report: IngestionReport) -> list[dict]:
    """Rows of the CSV in file order; missing files and broken links are reported."""
    table = _read(root)
    rows = []
    junk = dict.fromkeys(SPLITS, 0)
    non_images = dict.fromkeys(SPLITS, 0)
    for row in table.itertuples(index=False):
        path = Path(row.image.strip())
        path = path if path.is_absolute() else root.parent / path
        split, pid = row.split.strip(), int(row.pid)
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            non_images[split] += 1
        elif is_broken_link(path):
            report.broken_links.append(str(path))
        elif not path.is_file():
            report.missing_files.append(str(path))
        elif pid == JUNK_PID:
            junk[split] += 1
        else:
            rows.append({**crop_row(split, path, pid, int(row.camid)),
                         TIMESTAMP: _timestamp(getattr(row, TIMESTAMP, ""))})
    report.junk_dropped, report.non_images_ignored = junk, non_images
    return rows
