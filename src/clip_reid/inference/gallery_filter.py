"""Which gallery crops a search may answer with: some cameras, a time window, or both. One
object for every store, so faiss (a row mask) and Milvus (a boolean expression) filter alike."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

SEPARATOR = ";"  # "3;4;5": Kedro's --params splits on commas, so lists are written with ";"


@dataclass(frozen=True)
class GalleryFilter:
    """``camids``: only these cameras (None = all); ``start``/``end``: only crops whose
    timestamp lies in [start, end] (None = unbounded). Crops of unknown time (NaN) never pass a
    time window."""

    camids: tuple[int, ...] | None = None
    start: float | None = None
    end: float | None = None

    def __post_init__(self) -> None:
        if self.camids is not None and not self.camids:
            raise ValueError("The camera filter is empty: give at least one camera, or none "
                             "to search every camera.")
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"The time window's {name} must be a finite number, got {value}.")
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError(f"The time window starts ({self.start}) after it ends ({self.end}).")

    @classmethod
    def from_fields(cls, camids: Any = None, start: Any = None,
                    end: Any = None) -> GalleryFilter | None:
        """A filter from request or parameter fields (``camids``: a list, one int, or a string
        "3;4;5" / "3,4,5"; empty values mean "not given"); None when nothing filters."""
        cameras = _camera_list(camids)
        start, end = _number(start, "start"), _number(end, "end")
        if cameras is None and start is None and end is None:
            return None
        return cls(cameras, start, end)

    def mask(self, camids: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
        """Which gallery rows pass (for stores that filter in memory)."""
        keep = np.ones(len(camids), dtype=bool)
        if self.camids is not None:
            keep &= np.isin(camids, np.asarray(self.camids, dtype=np.int64))
        if self.start is not None:
            keep &= timestamps >= self.start
        if self.end is not None:
            keep &= timestamps <= self.end
        return keep

    def expression(self) -> str:
        """The same condition as a Milvus boolean expression over the ``camid`` and ``timestamp``
        fields."""
        parts = []
        if self.camids is not None:
            parts.append(f"camid in [{', '.join(str(cam) for cam in self.camids)}]")
        if self.start is not None:
            parts.append(f"timestamp >= {self.start!r}")
        if self.end is not None:
            parts.append(f"timestamp <= {self.end!r}")
        return " and ".join(parts)


def _camera_list(camids: Any) -> tuple[int, ...] | None:
    if camids is None or (isinstance(camids, float) and math.isnan(camids)):
        return None
    if isinstance(camids, str):
        items: Iterable[Any] = [part for part in camids.replace(",", SEPARATOR).split(SEPARATOR)
                                if part.strip()]
    elif isinstance(camids, Iterable):
        items = list(camids)
    else:
        items = [camids]
    try:
        cameras = tuple(sorted({int(str(item).strip()) for item in items}))
    except ValueError:
        raise ValueError(f"Cameras must be integers (e.g. \"3;4;5\"), got {camids!r}.") from None
    return cameras or None


def _number(value: Any, name: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"The time window's {name} must be a number (seconds), got "
                         f"{value!r}.") from None
    return None if math.isnan(number) else number
