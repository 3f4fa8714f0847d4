"""The Market-1501 layout, shared by DukeMTMC-reID and Occluded-Duke (``dataset.name``
``market1501``, ``dukemtmc``, ``occluded_duke``; the synthetic ``demo`` too).

Layout: ``<root>/bounding_box_train``, ``<root>/query``, ``<root>/bounding_box_test``, one crop
per file, the identity and camera in the name: ``PPPP_cCsS_FFFFFF_NN.jpg`` (Market-1501),
``PPPP_cC_fFFFFFFF.jpg`` (DukeMTMC-reID) or ``PPPP_cC_NN.png`` (CUHK03-NP). Junk crops (pid -1)
are dropped and counted; distractors (pid 0) stay in the gallery; names that follow no pattern,
broken symlinks and unreadable images are reported.

Published statistics (subset: identities / images, as torchreid and the official CLIP-ReID code
print them; the gallery count of Market-1501 includes the distractor identity 0)::

    Market-1501 (6 cameras)      train 751 / 12,936   query 750 / 3,368   gallery 751 / 15,913
    DukeMTMC-reID (8 cameras)    train 702 / 16,522   query 702 / 2,228   gallery 1,110 / 17,661
    Occluded-Duke (8 cameras)    train 702 / 15,618   query 519 / 2,210   gallery 1,110 / 17,661
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from clip_reid.data.image_index import (
    CropName,
    IngestionReport,
    finish_index,
    require_paths,
    scan_folder,
)

SPLIT_FOLDERS: dict[str, str] = {
    "train": "bounding_box_train",
    "query": "query",
    "gallery": "bounding_box_test",
}
SPLIT_SOURCES = {split: f"{folder}/" for split, folder in SPLIT_FOLDERS.items()}
NAME_PATTERNS = ("PPPP_cCsS_FFFFFF_NN (Market-1501), PPPP_cC_fFFFFFFF (Duke) or PPPP_cC_NN "
                 "(CUHK03-NP)")

# Numeric fields have at most 9 digits: a longer number is a bad name, not an int64 overflow.
_NUMBER = r"\d{1,9}"
_MARKET_NAMES = (
    # Market-1501: pid, camera, sequence, frame, bounding box
    re.compile(rf"^(-1|{_NUMBER})_c({_NUMBER})s({_NUMBER})_({_NUMBER})_({_NUMBER})$"),
    # DukeMTMC-reID / Occluded-Duke: pid, camera, frame
    re.compile(rf"^(-1|{_NUMBER})_c({_NUMBER})_f({_NUMBER})$"),
    # CUHK03-NP: pid, camera, image number
    re.compile(rf"^(-1|{_NUMBER})_c({_NUMBER})_({_NUMBER})$"),
)

EXPECTED_LAYOUT = """Expected a dataset in Market-1501 layout (dataset.name: market1501, dukemtmc,
occluded_duke):
  {root}/
    bounding_box_train/   0002_c1s1_000451_03.jpg ...  (training crops)
    query/                0001_c1s1_001051_00.jpg ...  (query crops)
    bounding_box_test/    0001_c1s1_000151_01.jpg ...  (gallery crops, incl. 0000_ distractors)
DukeMTMC-reID names its crops 0001_c2_f0046182.jpg; Occluded-Duke is the Occluded_Duke/ folder
its conversion script writes. Market-1501 is distributed by its authors (Zheng et al., ICCV 2015):
download Market-1501-v15.09.15.zip, unzip it and set `dataset.root` to the unzipped folder (in
conf/local/parameters.yml or a recipe environment), or set `dataset.source: download` with
`dataset.download.url` and `dataset.download.sha256`. Another layout? Set dataset.name to
cuhk03_np, msmt17, veri776 or image_list."""


@dataclass(frozen=True)
class MarketName:
    """The fields encoded in a Market-family file name (absent fields are 0)."""

    pid: int
    camid: int  # 0-based
    seq: int
    frame: int
    bbox: int


def parse_market_name(file_name: str) -> MarketName | None:
    """Decode a Market, Duke or CUHK03-NP crop name; ``None`` when it follows none of them."""
    stem = Path(file_name).stem
    for number, pattern in enumerate(_MARKET_NAMES):
        match = pattern.match(stem)
        if match is None:
            continue
        fields = [int(group) for group in match.groups()]
        pid, cam = fields[:2]
        if cam < 1:
            return None
        if number == 0:
            return MarketName(pid=pid, camid=cam - 1, seq=fields[2], frame=fields[3],
                              bbox=fields[4])
        return MarketName(pid=pid, camid=cam - 1, seq=0, frame=fields[2], bbox=0)
    return None


def check_layout(root: Path) -> None:
    """Fail early, with the expected layout in the message, when a split folder is missing."""
    require_paths(root, EXPECTED_LAYOUT.format(root=root), SPLIT_FOLDERS.values())


def _crop_name(file_name: str) -> CropName | None:
    name = parse_market_name(file_name)
    return None if name is None else CropName(name.pid, name.camid, name.seq, name.frame)


def scan_market_folders(root: Path, report: IngestionReport) -> list[dict]:
    """Rows of the three split folders of a Market-layout ``root`` (checked beforehand)."""
    return [row for split, folder in SPLIT_FOLDERS.items()
            for row in scan_folder(root / folder, split, _crop_name, report)]


def build_image_index(
    root: Path | str, verify_images: bool = True, num_workers: int = 2,
    progress_every_s: float = 10.0,
) -> tuple[pd.DataFrame, IngestionReport]:
    """Index every usable crop of a Market-layout dataset and report what was left out."""
    root = Path(root)
    check_layout(root)
    report = IngestionReport()
    rows = scan_market_folders(root, report)
    index = finish_index(rows, report, SPLIT_SOURCES, verify_images, num_workers,
                         progress_every_s)
    return index, report
