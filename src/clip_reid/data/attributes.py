"""Read and write identity attributes in the Market-1501 attribute file format (``.mat``).

The real ``market_attribute.mat`` is a struct ``market_attribute`` with ``train`` and ``test``
sub-structs; each holds one 1×N uint8 array per attribute (1/2 coded, age 1..4) and a 1×N cell
``image_index`` of 4-digit pid strings. The synthetic demo writes the same layout (plus extra
detail fields), so one reader serves both.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io

UPPER_COLOUR_FIELDS = tuple(
    "up" + c for c in ("black", "white", "red", "purple", "yellow", "gray", "blue", "green")
)
LOWER_COLOUR_FIELDS = tuple(
    "down" + c
    for c in ("black", "white", "pink", "purple", "yellow", "gray", "blue", "green", "brown")
)
BINARY_FIELDS = ("backpack", "bag", "handbag", "clothes", "down", "up", "hair", "hat", "gender")
ATTRIBUTE_FIELDS = ("age", *BINARY_FIELDS, *UPPER_COLOUR_FIELDS, *LOWER_COLOUR_FIELDS)
SPLITS = ("train", "test")
ROOT_NAME = "market_attribute"
_HEADER_BYTES = 116


class AttributeFileError(ValueError):
    """The attribute file does not follow the Market-1501 attribute schema."""


def _cell_to_pids(cell: np.ndarray, path: Path, split: str) -> list[int]:
    try:
        return [int(np.asarray(item).ravel()[0]) for item in cell.ravel()]
    except (ValueError, IndexError) as error:
        raise AttributeFileError(
            f"{path}: {split}.image_index must hold 4-digit pid strings ({error})."
        ) from error


def read_attribute_mat(path: Path | str) -> pd.DataFrame:
    """One row per identity: ``split``, ``pid`` and every attribute field present in the file."""
    path = Path(path)
    try:
        content = scipy.io.loadmat(path)
    except (OSError, ValueError) as error:
        raise AttributeFileError(f"Cannot read attribute file {path}: {error}") from error
    if ROOT_NAME not in content:
        raise AttributeFileError(f"{path}: no '{ROOT_NAME}' struct (found {sorted(content)}).")
    root = content[ROOT_NAME][0, 0]
    frames = []
    for split in SPLITS:
        if split not in root.dtype.names:
            raise AttributeFileError(f"{path}: '{ROOT_NAME}' has no '{split}' part.")
        part = root[split][0, 0]
        names = part.dtype.names
        missing = [f for f in (*ATTRIBUTE_FIELDS, "image_index") if f not in names]
        if missing:
            raise AttributeFileError(f"{path}: {split} lacks field(s) {missing}.")
        pids = _cell_to_pids(part["image_index"], path, split)
        columns = {"split": split, "pid": pids}
        for name in names:
            if name == "image_index":
                continue
            values = np.asarray(part[name]).ravel()
            if len(values) != len(pids):
                raise AttributeFileError(
                    f"{path}: {split}.{name} has {len(values)} values for {len(pids)} identities."
                )
            columns[name] = values.astype(np.int64)
        frames.append(pd.DataFrame(columns))
    return pd.concat(frames, ignore_index=True)


def write_attribute_mat(path: Path | str, attributes: pd.DataFrame) -> None:
    """Write ``attributes`` (as returned by :func:`read_attribute_mat`) in the same layout."""
    missing = [f for f in ("split", "pid", *ATTRIBUTE_FIELDS) if f not in attributes.columns]
    if missing:
        raise AttributeFileError(f"Cannot write {path}: missing column(s) {missing}.")
    struct = {}
    for split in SPLITS:
        part = attributes[attributes["split"] == split]
        fields = {
            name: part[name].to_numpy(dtype=np.uint8)[None, :]
            for name in part.columns
            if name not in ("split", "pid")
        }
        cell = np.empty((1, len(part)), dtype=object)
        cell[0, :] = [f"{pid:04d}" for pid in part["pid"]]
        fields["image_index"] = cell
        struct[split] = fields
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {ROOT_NAME: struct})
    content = bytearray(buffer.getvalue())
    # The 116-byte text header carries a creation time; a fixed one keeps files reproducible.
    content[:_HEADER_BYTES] = b"MATLAB 5.0 MAT-file, written by clip-reid".ljust(_HEADER_BYTES)
    Path(path).write_bytes(bytes(content))
