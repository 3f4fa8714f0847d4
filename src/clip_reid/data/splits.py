"""The one way to take a split (train, query, gallery) out of the image index."""

from __future__ import annotations

import pandas as pd

SPLITS = ("train", "query", "gallery")
TEST_SPLITS = ("query", "gallery")


def select_split(image_index: pd.DataFrame, split: str) -> pd.DataFrame:
    """Rows of ``split`` in index order, renumbered from 0 (positions then match features)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    return image_index[image_index["split"] == split].reset_index(drop=True)
