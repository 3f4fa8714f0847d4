"""Shared fixtures: tiny Market-layout trees written by the tests themselves."""

from pathlib import Path

import pytest
from builders import write_market_tree


@pytest.fixture
def tiny_market(tmp_path: Path) -> Path:
    """A 3-train-id, 2-test-id Market tree with junk, a distractor and the archive's quirks."""
    root = write_market_tree(
        tmp_path / "market",
        {
            "train": [
                "0002_c1s1_000451_03.jpg",
                "0002_c2s1_000551_01.jpg",
                "0007_c1s1_000100_01.jpg",
                "0007_c3s2_000200_02.jpg",
                "0010_c6s4_002300_01.jpg",
            ],
            "query": ["0001_c1s1_001051_00.jpg", "0003_c2s1_000151_00.jpg"],
            "gallery": [
                "0001_c1s1_001101_01.jpg",  # same camera as its query: removed per query
                "0001_c3s1_001201_01.jpg",
                "0003_c1s1_000301_02.jpg",
                "0000_c4s1_000001_01.jpg",  # distractor: kept
                "-1_c2s1_000401_03.jpg",  # junk: dropped and counted
            ],
        },
    )
    (root / "bounding_box_test" / "Thumbs.db").write_bytes(b"\x00\x01")
    (root / "gt_bbox").mkdir()
    return root
