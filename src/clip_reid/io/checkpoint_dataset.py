"""A Kedro dataset for model checkpoints that saves and loads the same thing, safely.

A checkpoint is a plain dict (tensors, numbers, strings, lists and dicts of them, e.g.
``{"config": {...}, "state_dict": {...}}``). Saving writes a temporary file next to the target
and renames it, so an interrupted save never leaves a file that looks complete (which
``--only-missing-outputs`` would trust). Loading uses ``torch.load(weights_only=True)``, so a
checkpoint cannot run code.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec
import torch
from kedro.io.core import (
    AbstractVersionedDataset,
    DatasetError,
    Version,
    get_filepath_str,
    get_protocol_and_path,
)


class TorchCheckpointDataset(AbstractVersionedDataset[dict, dict]):
    """Save/load a checkpoint dict with ``torch.save`` / ``torch.load(weights_only=True)``.

    Example catalog entry::

        reid_model:
          type: clip_reid.io.TorchCheckpointDataset
          filepath: data/06_models/reid_model.pt
          versioned: true
    """

    def __init__(
        self,
        *,
        filepath: str,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        protocol, path = get_protocol_and_path(filepath, version)
        self._protocol = protocol
        self._fs = fsspec.filesystem(protocol, **(credentials or {}), **(fs_args or {}))
        self.metadata = metadata
        super().__init__(
            filepath=PurePosixPath(path),
            version=version,
            exists_function=self._fs.exists,
            glob_function=self._fs.glob,
        )

    def load(self) -> dict:
        path = get_filepath_str(self._get_load_path(), self._protocol)
        try:
            with self._fs.open(path, "rb") as stream:
                return torch.load(stream, map_location="cpu", weights_only=True)
        except Exception as error:
            raise DatasetError(
                f"Cannot load checkpoint {path}: {error}. The file is damaged or not a "
                "checkpoint written by this project; delete it and re-run the stage that writes it."
            ) from error

    def save(self, data: dict) -> None:
        if not isinstance(data, dict):
            raise DatasetError(f"A checkpoint must be a dict, got {type(data).__name__}.")
        path = get_filepath_str(self._get_save_path(), self._protocol)
        if self._protocol == "file":
            _save_atomically(data, Path(path))
        else:  # object stores publish a file only when its upload completes
            with self._fs.open(path, "wb") as stream:
                torch.save(data, stream)
        self._fs.invalidate_cache(get_filepath_str(self._filepath, self._protocol))

    def _exists(self) -> bool:
        try:
            path = get_filepath_str(self._get_load_path(), self._protocol)
        except DatasetError:
            return False
        return self._fs.exists(path)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "protocol": self._protocol, "version": self._version}


def _save_atomically(data: dict, path: Path) -> None:
    """Write to a hidden temporary file in the target folder, then rename over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(data, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
