"""VeRi-776 vehicles (Liu et al., ICME 2016), supported by the official CLIP-ReID code:
``dataset.name: veri776``, ``dataset.root`` the unzipped ``VeRi`` folder.

Layout: ``image_train/``, ``image_query/``, ``image_test/`` (the gallery), crops named
``VVVV_cCCC_FFFFFFFF_N.jpg`` (vehicle, camera 1..20, frame, and a last number kept out of the
index). Every query image also lies in the gallery, from its own camera, so the cross-camera
protocol removes that copy. The release's other files (``name_*.txt``, ``*_label.xml``) are not
needed. Prompts name the object class: the layout's class word is ``vehicle``, so stage 1 learns
"A photo of a X X X X vehicle." (``prompt_learning.class_word: null`` takes the layout's word).

Published statistics (identities / images; 20 cameras; 776 vehicles in all)::

    train 576 / 37,778   query 200 / 1,678   gallery 200 / 11,579
"""

from __future__ import annotations

import re
from pathlib import Path

from clip_reid.data.image_index import CropName, IngestionReport, require_paths, scan_folder

CLASS_WORD = "vehicle"
SPLIT_FOLDERS = {"train": "image_train", "query": "image_query", "gallery": "image_test"}
SPLIT_SOURCES = {split: f"{folder}/" for split, folder in SPLIT_FOLDERS.items()}
NAME_PATTERN = "VVVV_cCCC_FFFFFFFF_N"
_NAME = re.compile(r"^(-1|\d{1,9})_c(\d{1,9})_(\d{1,9})_(\d{1,9})$")

EXPECTED_LAYOUT = """Expected VeRi-776 as its authors distribute it (dataset.name: veri776):
  {root}/
    image_train/   0001_c001_00016450_0.jpg ...   (training crops)
    image_query/   0002_c002_00030600_0.jpg ...   (query crops)
    image_test/    0002_c002_00030600_0.jpg ...   (gallery crops)
Set dataset.root to the unzipped VeRi folder."""


def parse_veri_name(file_name: str) -> CropName | None:
    """Decode ``VVVV_cCCC_FFFFFFFF_N``; ``None`` when the name does not follow it."""
    match = _NAME.match(Path(file_name).stem)
    if match is None or int(match.group(2)) < 1:
        return None
    pid, camera, frame, _ = (int(group) for group in match.groups())
    return CropName(pid=pid, camid=camera - 1, frame=frame)


def check(root: Path) -> None:
    """The three image folders exist."""
    require_paths(root, EXPECTED_LAYOUT.format(root=root), SPLIT_FOLDERS.values())


def scan(root: Path, report: IngestionReport) -> list[dict]:
    """Rows of the three image folders."""
    return [row for split, folder in SPLIT_FOLDERS.items()
            for row in scan_folder(root / folder, split, parse_veri_name, report)]
