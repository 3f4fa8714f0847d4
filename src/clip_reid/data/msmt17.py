"""MSMT17 (Wei et al., CVPR 2018): ``dataset.name: msmt17``, ``dataset.root`` the unzipped
``MSMT17_V1`` or ``MSMT17_V2`` folder.

Layout: image folders ``train/`` and ``test/`` (V2, faces blurred: ``mask_train_v2/`` and
``mask_test_v2/``), one sub-folder per identity, and four list files of ``<path> <pid>`` lines:
``list_train.txt`` + ``list_val.txt`` form the training split (as in the official CLIP-ReID
code), ``list_query.txt`` and ``list_gallery.txt`` the test splits. The camera is the third
field of the file name (``0000_000_01_0303morning_0015_0.jpg``: camera 1 of 15), the fifth is
kept as ``frame``. MSMT17 has no junk or distractor crops.

Train and test identities are numbered independently from 0; test pids are therefore stored
plus :data:`TEST_PID_OFFSET`, so that a pid names one person throughout the index.

Published statistics (identities / images; 15 cameras; 4,101 identities in all)::

    train 1,041 / 32,621   query 3,060 / 11,659   gallery 3,060 / 82,161
"""

from __future__ import annotations

import re
from pathlib import Path

from clip_reid.data.image_index import (
    DatasetLayoutError,
    IngestionReport,
    crop_row,
    is_broken_link,
    require_paths,
)

VERSIONS = {"V1": ("train", "test"), "V2": ("mask_train_v2", "mask_test_v2")}
LISTS = {"train": ("list_train.txt", "list_val.txt"), "query": ("list_query.txt",),
         "gallery": ("list_gallery.txt",)}
SPLIT_SOURCES = {"train": "list_train.txt + list_val.txt", "query": "list_query.txt",
                 "gallery": "list_gallery.txt"}
TEST_PID_OFFSET = 10_000
# pid_image-number_camera_date-and-time-of-day_frame_?, e.g. 0000_000_01_0303morning_0015_0
_NAME = re.compile(r"^(\d{1,9})_(\d{1,9})_(\d{1,9})_([^_]+)_(\d{1,9})_(\d{1,9})$")

EXPECTED_LAYOUT = """Expected MSMT17 as its authors distribute it (dataset.name: msmt17):
  {root}/                (MSMT17_V1 or MSMT17_V2)
    train/   test/       (V2: mask_train_v2/  mask_test_v2/)  one folder per identity
    list_train.txt  list_val.txt  list_query.txt  list_gallery.txt
                         lines like "0000/0000_000_01_0303morning_0015_0.jpg 0"
Set dataset.root to the MSMT17_V1 (or MSMT17_V2) folder."""


def detect_version(root: Path, variant: str | None) -> str:
    """``V1`` or ``V2`` from the image folders present (or as ``dataset.variant`` demands)."""
    if variant is not None and variant not in VERSIONS:
        raise DatasetLayoutError(
            f"dataset.variant for msmt17 must be null (detect), V1 or V2, got {variant!r}."
        )
    candidates = [variant] if variant else list(VERSIONS)
    for version in candidates:
        if all((root / folder).is_dir() for folder in VERSIONS[version]):
            return version
    wanted = " or ".join("/ + ".join(VERSIONS[v]) + "/" for v in candidates)
    hint = ""
    inner = [p.name for p in sorted(root.glob("MSMT17_V*")) if p.is_dir()] if root.is_dir() else []
    if inner:
        hint = f"\n{root} holds {', '.join(inner)}/: set dataset.root to that folder."
    raise DatasetLayoutError(
        f"Dataset folder {root} lacks the image folders {wanted}{hint}\n"
        + EXPECTED_LAYOUT.format(root=root)
    )


def check(root: Path, variant: str | None) -> None:
    """The image folders of one version and the four list files exist."""
    expected = EXPECTED_LAYOUT.format(root=root)
    require_paths(root, expected)
    require_paths(root, expected, VERSIONS[detect_version(root, variant)],
                  [name for names in LISTS.values() for name in names])


def _read_list(
    root: Path, list_name: str, folder: Path, split: str, report: IngestionReport
) -> list[dict]:
    rows = []
    text = (root / list_name).read_text(encoding="utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        name = _NAME.match(Path(fields[0]).stem) if len(fields) == 2 else None
        if name is None or not re.fullmatch(r"\d{1,9}", fields[1]):
            report.bad_names.append(f"{root / list_name}:{number}: {line.strip()[:200]}")
            continue
        camera = int(name.group(3))
        if camera < 1:
            report.bad_names.append(f"{root / list_name}:{number}: camera 0 in {fields[0]}")
            continue
        path = folder / fields[0]
        if is_broken_link(path):
            report.broken_links.append(str(path))
        elif not path.is_file():
            report.missing_files.append(str(path))
        else:
            pid = int(fields[1]) + (0 if split == "train" else TEST_PID_OFFSET)
            rows.append(crop_row(split, path, pid, camera - 1, 0, int(name.group(5))))
    return rows


def scan(root: Path, variant: str | None, report: IngestionReport) -> list[dict]:
    """Rows of the four list files, in list order (train, then val, query, gallery)."""
    train_folder, test_folder = (root / f for f in VERSIONS[detect_version(root, variant)])
    rows = []
    for split, list_names in LISTS.items():
        folder = train_folder if split == "train" else test_folder
        for list_name in list_names:
            rows += _read_list(root, list_name, folder, split, report)
        report.junk_dropped[split] = 0
        report.non_images_ignored[split] = 0
    return rows
