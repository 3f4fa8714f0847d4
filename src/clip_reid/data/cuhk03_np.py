"""CUHK03 under the new protocol (CUHK03-NP, Zhong et al., CVPR 2017): ``dataset.name: cuhk03_np``.

The release (``cuhk03-np/``) holds two versions of the same crops, each in Market-1501 layout:
``labeled/`` (hand-drawn boxes) and ``detected/`` (DPM detections); ``dataset.variant`` picks
one (default ``labeled``). Crops are PNGs named ``PPPP_cC_NN.png`` (identity, camera 1 or 2,
image number); Market-style names are accepted too, as converted copies use them.

Published statistics (identities / images; 2 cameras; 1,467 identities in all)::

    labeled    train 767 / 7,368   query 700 / 1,400   gallery 700 / 5,328
    detected   train 767 / 7,365   query 700 / 1,400   gallery 700 / 5,332
"""

from __future__ import annotations

from pathlib import Path

from clip_reid.data.image_index import DatasetLayoutError, IngestionReport, require_paths
from clip_reid.data.market import SPLIT_FOLDERS, scan_market_folders

VARIANTS = ("labeled", "detected")
DEFAULT_VARIANT = "labeled"

EXPECTED_LAYOUT = """Expected CUHK03-NP as its authors distribute it (dataset.name: cuhk03_np,
dataset.variant: labeled or detected):
  {root}/
    labeled/
      bounding_box_train/   0001_c1_1.png ...   (767 training identities)
      query/                0003_c1_1.png ...
      bounding_box_test/    0003_c2_6.png ...
    detected/               (the same three folders)
Set dataset.root to the cuhk03-np folder (the parent of labeled/ and detected/)."""


def variant_root(root: Path, variant: str | None) -> Path:
    """The Market-layout folder of the chosen variant."""
    variant = variant or DEFAULT_VARIANT
    if variant not in VARIANTS:
        raise DatasetLayoutError(
            f"dataset.variant for cuhk03_np must be one of {VARIANTS}, got {variant!r}."
        )
    return root / variant


def check(root: Path, variant: str | None) -> None:
    """The variant sub-folder and its three split folders exist."""
    folder = variant_root(root, variant)
    expected = EXPECTED_LAYOUT.format(root=root)
    hint = ""
    if root.is_dir() and all((root / name).is_dir() for name in SPLIT_FOLDERS.values()):
        hint = (f"{root} itself is in Market-1501 layout: set dataset.root to its parent, or use "
                "dataset.name: market1501.\n")
    require_paths(root, hint + expected, [folder.name])
    require_paths(folder, expected, SPLIT_FOLDERS.values())


def scan(root: Path, variant: str | None, report: IngestionReport) -> list[dict]:
    """Rows of the chosen variant's three split folders."""
    return scan_market_folders(variant_root(root, variant), report)
