"""``dataset.name`` → the parser of that dataset layout; every parser yields the same image index.

==========================================================  ==============  ==========
name                                                        module (data/)  class word
==========================================================  ==============  ==========
market1501, dukemtmc, occluded_duke, demo                   market          person
cuhk03_np (dataset.variant: labeled | detected)             cuhk03_np       person
msmt17 (dataset.variant: null = detect | V1 | V2)           msmt17          person
veri776                                                     veri776         vehicle
image_list (dataset.root: the CSV file)                     image_list      person
==========================================================  ==============  ==========

The class word is the last word of the stage-1 prompt ("A photo of a X X X X <word>.").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from clip_reid.data import cuhk03_np, image_list, market, msmt17, veri776
from clip_reid.data.image_index import (
    INDEX_COLUMNS,
    DatasetLayoutError,
    IngestionReport,
    finish_index,
)

Check = Callable[[Path, "str | None"], None]
Scan = Callable[[Path, "str | None", IngestionReport], list[dict]]


def _no_variant(check: Callable[[Path], None], name: str) -> Check:
    """A check for layouts without variants: a ``dataset.variant`` there is a mistake."""

    def checked(root: Path, variant: str | None) -> None:
        if variant is not None:
            raise DatasetLayoutError(
                f"dataset.variant is {variant!r}, but layout {name} has no variants (only "
                "cuhk03_np: labeled/detected and msmt17: V1/V2 do). Set it to null."
            )
        check(root)

    return checked


@dataclass(frozen=True)
class DatasetLayout:
    """How one dataset layout is checked and read."""

    name: str
    check: Check  # raises DatasetLayoutError naming what is missing and the layout expected
    scan: Scan  # rows of every split; what is left out goes into the report
    split_sources: Mapping[str, str]  # where each split comes from, for messages
    name_pattern: str  # the file names the layout expects, for the report
    class_word: str = "person"
    num_cameras: int | None = None  # the dataset's cameras (None: any number, e.g. the demo)


def _plain(name: str, check: Callable[[Path], None],
           scan: Callable[[Path, IngestionReport], list[dict]], split_sources: Mapping[str, str],
           name_pattern: str, class_word: str = "person",
           num_cameras: int | None = None) -> DatasetLayout:
    """A layout without variants."""
    return DatasetLayout(name, _no_variant(check, name),
                         lambda root, _variant, report: scan(root, report), split_sources,
                         name_pattern, class_word, num_cameras)


# Cameras of the published datasets: a name with another camera (c9 on Market-1501) is a typo
# or a file of another dataset.
CAMERAS = {"market1501": 6, "dukemtmc": 8, "occluded_duke": 8, "cuhk03_np": 2, "msmt17": 15,
           "veri776": 20}


LAYOUTS: dict[str, DatasetLayout] = {
    **{
        name: _plain(name, market.check_layout, market.scan_market_folders, market.SPLIT_SOURCES,
                     market.NAME_PATTERNS, num_cameras=CAMERAS.get(name))
        for name in ("market1501", "dukemtmc", "occluded_duke", "demo")
    },
    "cuhk03_np": DatasetLayout("cuhk03_np", cuhk03_np.check, cuhk03_np.scan,
                               market.SPLIT_SOURCES, "PPPP_cC_NN (or a Market-1501 name)",
                               num_cameras=CAMERAS["cuhk03_np"]),
    "msmt17": DatasetLayout("msmt17", msmt17.check, msmt17.scan, msmt17.SPLIT_SOURCES,
                            "<pid>/PPPP_NNN_CC_<date>_FFFF_N <pid> lines in the list files",
                            num_cameras=CAMERAS["msmt17"]),
    "veri776": _plain("veri776", veri776.check, veri776.scan, veri776.SPLIT_SOURCES,
                      veri776.NAME_PATTERN, class_word=veri776.CLASS_WORD,
                      num_cameras=CAMERAS["veri776"]),
    "image_list": _plain("image_list", image_list.check, image_list.scan,
                         image_list.SPLIT_SOURCES, "image,pid,camid,split rows"),
}


def get_layout(name: str) -> DatasetLayout:
    """The layout called ``name``, or an error listing the known ones."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise DatasetLayoutError(
            f"Unknown dataset.name {name!r}: use one of {sorted(LAYOUTS)} (see the README's "
            "dataset layouts table), or image_list with a CSV for any other data."
        ) from None


def class_word_for(name: str) -> str:
    """The object class the prompts should name for dataset layout ``name``."""
    return get_layout(name).class_word


def parse_layout(
    name: str,
    root: Path | str,
    variant: str | None = None,
    *,
    verify_images: bool,
    num_workers: int,
    progress_every_s: float,
) -> tuple[pd.DataFrame, IngestionReport]:
    """Check ``root`` against layout ``name``, index every usable crop, report the rest. The
    verification options are the `ingestion` block's (IngestionSettings), given explicitly."""
    layout = get_layout(name)
    root = Path(root)
    layout.check(root, variant)
    report = IngestionReport()
    rows = known_cameras(layout.scan(root, variant, report), layout, report)
    index = finish_index(rows, report, layout.split_sources, verify_images, num_workers,
                         progress_every_s)
    return index, report


def read_split(name: str, root: Path | str, variant: str | None,
               split: str) -> tuple[pd.DataFrame, IngestionReport]:
    """The rows of one split of the dataset at ``root`` (checked against layout ``name``; images
    not decoded) and what was left out, without the evaluation protocol's checks: a gallery
    needs no query split. Extra columns a layout reads (image_list: ``timestamp``) stay."""
    layout = get_layout(name)
    root = Path(root)
    layout.check(root, variant)
    report = IngestionReport()
    rows = [row for row in known_cameras(layout.scan(root, variant, report), layout, report)
            if row["split"] == split]
    columns = dict.fromkeys([*INDEX_COLUMNS[:-1], *(key for row in rows for key in row)])
    return pd.DataFrame(rows, columns=list(columns)), report


def known_cameras(rows: list[dict], layout: DatasetLayout, report: IngestionReport) -> list[dict]:
    """``rows`` whose camera is one of the layout's; the others are bad names, reported with the
    camera found and the ones the dataset has."""
    if layout.num_cameras is None:
        return rows
    kept = []
    for row in rows:
        if row["camid"] < layout.num_cameras:
            kept.append(row)
        else:
            report.bad_names.append(f"{row['path']}: camera {row['camid'] + 1}, but {layout.name} "
                                    f"has cameras 1-{layout.num_cameras}")
    return kept
