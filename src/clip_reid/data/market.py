"""Parse a dataset in Market-1501 layout into an image index (one row per usable crop).

Layout: ``<root>/bounding_box_train``, ``<root>/query``, ``<root>/bounding_box_test``; file names
``PPPP_cCsS_FFFFFF_NN.jpg``. Everything that is not a usable crop is counted and reported, never
silently dropped: junk crops (pid -1), names that do not match the pattern, unreadable images.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from PIL import Image

SPLIT_FOLDERS: dict[str, str] = {
    "train": "bounding_box_train",
    "query": "query",
    "gallery": "bounding_box_test",
}
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
JUNK_PID = -1
DISTRACTOR_PID = 0
INDEX_COLUMNS = ["split", "path", "pid", "camid", "seq", "frame", "label"]

_MARKET_NAME = re.compile(r"^(-1|\d+)_c(\d+)s(\d+)_(\d+)_(\d+)$")

EXPECTED_LAYOUT = """Expected a dataset in Market-1501 layout:
  {root}/
    bounding_box_train/   0002_c1s1_000451_03.jpg ...  (training crops)
    query/                0001_c1s1_001051_00.jpg ...  (query crops)
    bounding_box_test/    0001_c1s1_000151_01.jpg ...  (gallery crops, incl. 0000_ distractors)
Market-1501 is distributed by its authors (Zheng et al., ICCV 2015): download
Market-1501-v15.09.15.zip, unzip it and set `dataset.root` to the unzipped folder (in
conf/local/parameters.yml or a recipe environment), or set `dataset.source: download` with
`dataset.download.url` and `dataset.download.sha256`."""


class DatasetLayoutError(FileNotFoundError):
    """The dataset folder is missing or does not follow the Market-1501 layout."""


class DatasetProtocolError(ValueError):
    """The dataset cannot be evaluated under the cross-camera ReID protocol."""


@dataclass(frozen=True)
class MarketName:
    """The fields encoded in a Market-1501 file name."""

    pid: int
    camid: int  # 0-based
    seq: int
    frame: int
    bbox: int


@dataclass
class IngestionReport:
    """What ingestion left out and why, so nothing disappears silently."""

    junk_dropped: dict[str, int] = field(default_factory=dict)
    non_images_ignored: dict[str, int] = field(default_factory=dict)
    bad_names: list[str] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """A JSON-ready summary with counts first, then the full lists."""
        return {
            "junk_dropped": self.junk_dropped,
            "non_images_ignored": self.non_images_ignored,
            "num_bad_names": len(self.bad_names),
            "num_unreadable": len(self.unreadable),
            "bad_names": self.bad_names,
            "unreadable": self.unreadable,
            "warnings": self.warnings,
        }


def parse_market_name(file_name: str) -> MarketName | None:
    """Decode ``PPPP_cCsS_FFFFFF_NN.ext``; ``None`` when the name does not follow the pattern."""
    match = _MARKET_NAME.match(Path(file_name).stem)
    if match is None:
        return None
    pid, cam, seq, frame, bbox = (int(group) for group in match.groups())
    if cam < 1:
        return None
    return MarketName(pid=pid, camid=cam - 1, seq=seq, frame=frame, bbox=bbox)


def check_layout(root: Path) -> None:
    """Fail early, with the expected layout in the message, when a split folder is missing."""
    if not root.is_dir():
        raise DatasetLayoutError(
            f"Dataset folder not found: {root}\n" + EXPECTED_LAYOUT.format(root=root)
        )
    missing = [name for name in SPLIT_FOLDERS.values() if not (root / name).is_dir()]
    if missing:
        raise DatasetLayoutError(
            f"Dataset folder {root} lacks {', '.join(missing)}\n"
            + EXPECTED_LAYOUT.format(root=root)
        )


def _scan_split(root: Path, split: str, report: IngestionReport) -> list[dict]:
    """Rows of one split folder, in sorted file order (listing order is filesystem-dependent)."""
    folder = root / SPLIT_FOLDERS[split]
    rows = []
    junk = non_images = 0
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue  # e.g. nested folders; the split folders of Market hold files only
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            non_images += 1  # Thumbs.db and the like ship in the real archive
            continue
        name = parse_market_name(path.name)
        if name is None:
            report.bad_names.append(str(path))
            continue
        if name.pid == JUNK_PID:
            junk += 1
            continue
        rows.append(
            {
                "split": split,
                "path": str(path.resolve()),
                "pid": name.pid,
                "camid": name.camid,
                "seq": name.seq,
                "frame": name.frame,
            }
        )
    report.junk_dropped[split] = junk
    report.non_images_ignored[split] = non_images
    return rows


def _decode_error(path: str) -> str | None:
    """Fully decode one image; the error text when it cannot be read."""
    try:
        with Image.open(path) as image:
            image.load()
    except Exception as error:  # noqa: BLE001 - any decoding failure means "unusable image"
        return f"{type(error).__name__}: {error}"
    return None


def find_unreadable_images(paths: Iterable[str], num_workers: int = 2) -> dict[str, str]:
    """Map each image that cannot be decoded to the reason (PIL decodes outside the GIL)."""
    paths = list(paths)
    with ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool:
        errors = pool.map(_decode_error, paths, chunksize=64)
        return {path: error for path, error in zip(paths, errors, strict=True) if error}


def assign_train_labels(index: pd.DataFrame) -> pd.DataFrame:
    """Contiguous labels 0..N-1 over sorted training pids; -1 for query and gallery rows."""
    index = index.copy()
    train = index["split"] == "train"
    pids = sorted(index.loc[train, "pid"].unique())
    mapping = {pid: label for label, pid in enumerate(pids)}
    index["label"] = -1
    index.loc[train, "label"] = index.loc[train, "pid"].map(mapping)
    return index


def check_protocol(index: pd.DataFrame, report: IngestionReport) -> None:
    """Raise when cross-camera evaluation is impossible; warn about partial problems."""
    for split in SPLIT_FOLDERS:
        if not (index["split"] == split).any():
            raise DatasetProtocolError(
                f"The {split} split ({SPLIT_FOLDERS[split]}/) has no usable image."
            )
    query = index[index["split"] == "query"]
    gallery = index[index["split"] == "gallery"]
    cameras = set(query["camid"]) | set(gallery["camid"])
    if len(cameras) < 2:
        raise DatasetProtocolError(
            f"Query and gallery come from one camera only ({sorted(cameras)}): cross-camera "
            "evaluation is impossible, every true match would be removed by the protocol."
        )
    gallery_cams = gallery.groupby("pid")["camid"].agg(set).to_dict()
    has_match = [
        bool(gallery_cams.get(pid, set()) - {cam})
        for pid, cam in zip(query["pid"], query["camid"], strict=True)
    ]
    unmatched = len(has_match) - sum(has_match)
    if unmatched == len(has_match):
        raise DatasetProtocolError(
            "No query has a gallery image of its identity from another camera: cross-camera "
            "evaluation is impossible. Check that query/ and bounding_box_test/ belong together."
        )
    if unmatched:
        report.warnings.append(
            f"{unmatched} of {len(has_match)} query images have no gallery image of their identity "
            "from another camera; they will be skipped by the evaluation protocol."
        )
    test_pids = (set(query["pid"]) | set(gallery["pid"])) - {DISTRACTOR_PID}
    shared = set(index.loc[index["split"] == "train", "pid"]) & test_pids
    if shared:
        report.warnings.append(
            f"{len(shared)} identities appear in both train and test splits "
            f"(e.g. {sorted(shared)[:5]}); results would be optimistic."
        )


def build_image_index(
    root: Path | str, verify_images: bool = True, num_workers: int = 2
) -> tuple[pd.DataFrame, IngestionReport]:
    """Index every usable crop of a Market-layout dataset and report what was left out."""
    root = Path(root)
    check_layout(root)
    report = IngestionReport()
    rows = [row for split in SPLIT_FOLDERS for row in _scan_split(root, split, report)]
    index = pd.DataFrame(rows, columns=INDEX_COLUMNS[:-1])
    if verify_images and len(index):
        unreadable = find_unreadable_images(index["path"], num_workers=num_workers)
        report.unreadable = [{"path": p, "error": e} for p, e in sorted(unreadable.items())]
        index = index[~index["path"].isin(unreadable)]
    index = assign_train_labels(index).reset_index(drop=True)
    index = index.astype({"pid": "int64", "camid": "int64", "seq": "int64", "frame": "int64"})
    check_protocol(index, report)
    return index[INDEX_COLUMNS], report


def dataset_statistics(index: pd.DataFrame) -> pd.DataFrame:
    """Identities, images and cameras per split (distractor pid 0 counts as an identity)."""
    stats = [
        {
            "subset": split,
            "num_ids": int(part["pid"].nunique()),
            "num_images": len(part),
            "num_cameras": int(part["camid"].nunique()),
        }
        for split in SPLIT_FOLDERS
        for part in [index[index["split"] == split]]
    ]
    return pd.DataFrame(stats)


def format_statistics(stats: pd.DataFrame, title: str = "Dataset statistics") -> str:
    """The familiar ReID summary table: ``subset | # ids | # images | # cameras``."""
    rule = "  " + "-" * 40
    lines = [
        f"=> {title}:",
        rule,
        "  subset   | # ids | # images | # cameras",
        rule,
    ]
    lines += [
        f"  {row.subset:<8} | {row.num_ids:5d} | {row.num_images:8d} | {row.num_cameras:9d}"
        for row in stats.itertuples()
    ]
    lines.append(rule)
    return "\n".join(lines)
