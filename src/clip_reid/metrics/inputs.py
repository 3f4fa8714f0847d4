"""Validation of ranking inputs, shared by every evaluator so they reject bad input alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

AP_MODES = ("standard", "market_matlab")


def to_numpy(value: Any, name: str) -> np.ndarray:
    """``value`` (array, tensor or sequence) as a numpy array, without a copy when possible."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{name} must be an array or a tensor, got {type(value).__name__}."
        ) from error


def labels_array(value: Any, name: str, length: int | None = None) -> np.ndarray:
    """A 1-d int64 label vector (pids or camids), checked for shape and integer values."""
    array = to_numpy(value, name)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-d, got shape {array.shape}.")
    if length is not None and array.shape[0] != length:
        raise ValueError(f"{name} has {array.shape[0]} entries but the distances need {length}.")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        if not np.array_equal(array, np.round(array)):
            raise ValueError(f"{name} must hold integer labels, got dtype {array.dtype}.")
    return array.astype(np.int64, copy=False)


def check_ap_mode(ap_mode: str) -> None:
    if ap_mode not in AP_MODES:
        raise ValueError(f"ap_mode must be one of {AP_MODES}, got {ap_mode!r}.")


def check_positive(value: int, name: str) -> None:
    if int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


@dataclass(frozen=True)
class RankingLabels:
    """Query and gallery labels validated against each other."""

    q_pids: np.ndarray
    g_pids: np.ndarray
    q_camids: np.ndarray
    g_camids: np.ndarray

    @classmethod
    def build(
        cls, q_pids: Any, g_pids: Any, q_camids: Any, g_camids: Any, num_query: int,
        num_gallery: int,
    ) -> RankingLabels:
        return cls(
            labels_array(q_pids, "q_pids", num_query),
            labels_array(g_pids, "g_pids", num_gallery),
            labels_array(q_camids, "q_camids", num_query),
            labels_array(g_camids, "g_camids", num_gallery),
        )


    def check_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        """(num_query, num_gallery) if ``shape`` is that of these labels' ranking."""
        expected = (len(self.q_pids), len(self.g_pids))
        if tuple(shape) != expected:
            raise ValueError(f"The ranking has shape {tuple(shape)} but the labels are of "
                             f"{expected[0]} queries and {expected[1]} gallery items.")
        return expected


def distance_matrix_array(distmat: Any) -> np.ndarray:
    """A 2-d float32/float64 C-contiguous distance matrix (NaN and inf are checked per chunk)."""
    array = to_numpy(distmat, "distmat")
    if array.ndim != 2:
        raise ValueError(f"distmat must be 2-d (num_query, num_gallery), got shape {array.shape}.")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"distmat is empty (shape {array.shape}): nothing to evaluate.")
    if array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float64 if array.dtype.itemsize > 4 else np.float32)
    return np.ascontiguousarray(array)


def check_finite(block: np.ndarray, first_row: int) -> None:
    """Raise on NaN or inf: ranks of non-finite distances are meaningless (cheap check first)."""
    if np.isfinite(block.sum(dtype=np.float64)):
        return
    bad = np.argwhere(~np.isfinite(block))
    if bad.size:
        row, col = bad[0]
        raise ValueError(
            f"distmat[{first_row + row}, {col}] is {block[row, col]}: distances must be finite; "
            "fix the features (NaN usually means a zero-norm feature or a diverged model)."
        )
