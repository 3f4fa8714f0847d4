"""The image index every dataset layout yields, and the checks and summaries shared by all of them.

One row per usable crop: ``split`` (train/query/gallery), absolute ``path``, ``pid``, 0-based
``camid``, ``seq``, ``frame`` and ``label`` (contiguous 0..N-1 over training identities, -1
elsewhere). Whatever a layout leaves out is counted in an :class:`IngestionReport`, never dropped
silently.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from PIL import Image

from clip_reid.data.splits import SPLITS
from clip_reid.metrics.protocol import DISTRACTOR_PID, JUNK_PID

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
INDEX_COLUMNS = ["split", "path", "pid", "camid", "seq", "frame", "label"]


class DatasetLayoutError(FileNotFoundError):
    """The dataset folder is missing or does not follow the layout its ``dataset.name`` names."""


class DatasetProtocolError(ValueError):
    """The dataset cannot be evaluated under the cross-camera ReID protocol."""


@dataclass
class IngestionReport:
    """What ingestion left out and why, so nothing disappears silently."""

    junk_dropped: dict[str, int] = field(default_factory=dict)
    non_images_ignored: dict[str, int] = field(default_factory=dict)
    bad_names: list[str] = field(default_factory=list)
    broken_links: list[str] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """A JSON-ready summary with counts first, then the full lists."""
        return {
            "junk_dropped": self.junk_dropped,
            "non_images_ignored": self.non_images_ignored,
            "num_bad_names": len(self.bad_names),
            "num_broken_links": len(self.broken_links),
            "num_missing_files": len(self.missing_files),
            "num_unreadable": len(self.unreadable),
            "bad_names": self.bad_names,
            "broken_links": self.broken_links,
            "missing_files": self.missing_files,
            "unreadable": self.unreadable,
            "warnings": self.warnings,
        }


def require_paths(
    root: Path, expected: str, folders: Iterable[str] = (), files: Iterable[str] = ()
) -> None:
    """Raise, naming ``root`` or every missing folder and file, with the layout ``expected``."""
    if not root.is_dir():
        raise DatasetLayoutError(f"Dataset folder not found: {root}\n{expected}")
    missing = [name for name in folders if not (root / name).is_dir()]
    missing += [name for name in files if not (root / name).is_file()]
    if missing:
        raise DatasetLayoutError(f"Dataset folder {root} lacks {', '.join(missing)}\n{expected}")


def crop_row(split: str, path: Path, pid: int, camid: int, seq: int = 0, frame: int = 0) -> dict:
    """One index row (``label`` is assigned once every split is known)."""
    return {"split": split, "path": str(path.resolve()), "pid": pid, "camid": camid, "seq": seq,
            "frame": frame}


def is_broken_link(path: Path) -> bool:
    """A symlink whose target is missing or that loops (``exists`` follows links and fails)."""
    return path.is_symlink() and not path.exists()


@dataclass(frozen=True)
class CropName:
    """The fields a layout reads from a crop's file name (absent fields are 0)."""

    pid: int
    camid: int  # 0-based
    seq: int = 0
    frame: int = 0


def scan_folder(
    folder: Path, split: str, parse: Callable[[str], CropName | None], report: IngestionReport
) -> list[dict]:
    """Rows of one split folder of crops, in sorted file order (listing order is
    filesystem-dependent); junk, non-images, bad names and broken links are counted."""
    rows = []
    junk = non_images = 0
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES or path.is_dir():
            non_images += 1  # Thumbs.db and the like ship in real archives
            continue
        name = parse(path.name)
        if name is None:
            report.bad_names.append(str(path))
        elif is_broken_link(path):
            report.broken_links.append(str(path))
        elif name.pid == JUNK_PID:
            junk += 1
        else:
            rows.append(crop_row(split, path, name.pid, name.camid, name.seq, name.frame))
    report.junk_dropped[split] = junk
    report.non_images_ignored[split] = non_images
    return rows


class ProgressLog:
    """Plain-log progress of a long loop: one INFO line every ``every_s`` seconds and at the end.

    Lines read without a TTY, e.g. ``verified 5000/12936 images (39%), 12 s elapsed, ~19 s left``.
    """

    def __init__(self, total: int, verb: str, *, every_s: float, noun: str = "images"):
        self.total, self.verb, self.noun, self.every_s = total, verb, noun, every_s
        self.done = 0
        self.start = self.last = time.monotonic()

    def step(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if self.done >= self.total or now - self.last >= self.every_s:
            self.last = now
            elapsed = now - self.start
            left = elapsed / self.done * (self.total - self.done) if self.done else 0.0
            logger.info("%s %d/%d %s (%d%%), %.0f s elapsed, ~%.0f s left", self.verb, self.done,
                        self.total, self.noun, 100 * self.done // max(self.total, 1), elapsed,
                        left)


def _decode_error(path: str) -> str | None:
    """Fully decode one image; the error text when it cannot be read."""
    try:
        with Image.open(path) as image:
            image.load()
    except Exception as error:  # noqa: BLE001 - any decoding failure means "unusable image"
        return f"{type(error).__name__}: {error}"
    return None


def find_unreadable_images(
    paths: Iterable[str], num_workers: int = 2, progress_every_s: float = 10.0
) -> dict[str, str]:
    """Map each image that cannot be decoded to the reason (PIL decodes outside the GIL).

    Logs its progress every ``progress_every_s`` seconds, as decoding a large dataset takes
    minutes.
    """
    paths = list(paths)
    progress = ProgressLog(len(paths), "verified", every_s=progress_every_s)
    unreadable = {}
    with ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool:
        for path, error in zip(paths, pool.map(_decode_error, paths, chunksize=64), strict=True):
            if error:
                unreadable[path] = error
            progress.step()
    return unreadable


def assign_train_labels(index: pd.DataFrame) -> pd.DataFrame:
    """Contiguous labels 0..N-1 over sorted training pids; -1 for query and gallery rows."""
    index = index.copy()
    train = index["split"] == "train"
    pids = sorted(index.loc[train, "pid"].unique())
    mapping = {pid: label for label, pid in enumerate(pids)}
    index["label"] = -1
    index.loc[train, "label"] = index.loc[train, "pid"].map(mapping)
    return index


def check_protocol(index: pd.DataFrame, report: IngestionReport, where: Mapping[str, str]) -> None:
    """Raise when cross-camera evaluation is impossible; warn about partial problems.

    ``where`` names the source of each split in the layout (a folder or a list file).
    """
    for split in SPLITS:
        if not (index["split"] == split).any():
            raise DatasetProtocolError(f"The {split} split ({where[split]}) has no usable image.")
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
            f"evaluation is impossible. Check that {where['query']} and {where['gallery']} "
            "belong together."
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


def finish_index(
    rows: list[dict],
    report: IngestionReport,
    where: Mapping[str, str],
    verify_images: bool,
    num_workers: int,
    progress_every_s: float,
) -> pd.DataFrame:
    """Rows of every split → the checked index: unreadable images out, labels in, protocol ok."""
    index = pd.DataFrame(rows, columns=INDEX_COLUMNS[:-1])
    if verify_images and len(index):
        unreadable = find_unreadable_images(index["path"], num_workers, progress_every_s)
        report.unreadable = [{"path": p, "error": e} for p, e in sorted(unreadable.items())]
        index = index[~index["path"].isin(unreadable)]
    index = assign_train_labels(index).reset_index(drop=True)
    index = index.astype({"pid": "int64", "camid": "int64", "seq": "int64", "frame": "int64"})
    check_protocol(index, report, where)
    return index[INDEX_COLUMNS]


def dataset_statistics(index: pd.DataFrame) -> pd.DataFrame:
    """Identities, images and cameras per split (distractor pid 0 counts as an identity)."""
    stats = [
        {
            "subset": split,
            "num_ids": int(part["pid"].nunique()),
            "num_images": len(part),
            "num_cameras": int(part["camid"].nunique()),
        }
        for split in SPLITS
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
