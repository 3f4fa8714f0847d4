"""A torch Dataset over the rows of an image index: one transformed crop plus its identity fields.

Items are dicts (``image``, ``label``, ``pid``, ``camid``, ``index``) that torch's default collate
stacks into a dict of tensors, so no custom collate is needed. ``index`` is the row position in
the frame, which lets callers map features or predictions back to paths.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
from PIL import Image
from torch.utils.data import Dataset

REQUIRED_COLUMNS = ("path", "pid", "camid", "label")


class ImageReadError(OSError):
    """An image listed in the index cannot be opened or decoded."""


class ReidImageDataset(Dataset[dict[str, Any]]):
    """Rows of ``frame`` (positional order) as transformed RGB crops with their labels."""

    def __init__(self, frame: pd.DataFrame, transform: Callable[[Image.Image], Any]) -> None:
        missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
        if missing:
            raise ValueError(
                f"The image index lacks column(s) {missing}; it needs {list(REQUIRED_COLUMNS)}. "
                f"Build it with the data_ingestion pipeline."
            )
        # Plain lists: cheap to pickle into DataLoader workers and fast to index per item.
        self.paths: list[str] = frame["path"].astype(str).tolist()
        self.pids: list[int] = frame["pid"].astype(int).tolist()
        self.camids: list[int] = frame["camid"].astype(int).tolist()
        self.labels: list[int] = frame["label"].astype(int).tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {
            "image": self.transform(read_rgb(self.paths[index])),
            "label": self.labels[index],
            "pid": self.pids[index],
            "camid": self.camids[index],
            "index": index,
        }


def read_rgb(path: str) -> Image.Image:
    """The fully decoded image at ``path`` in RGB; any failure names the file and the fix."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise ImageReadError(
            f"Cannot read image {path}: {error}. The image index lists it, so the file was moved, "
            f"deleted or damaged after ingestion: restore it, or re-run the data_ingestion "
            f"pipeline to rebuild the index without it."
        ) from error
