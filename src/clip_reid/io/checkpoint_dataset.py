"""A Kedro dataset for model checkpoints that saves and loads the same thing, safely.

A checkpoint file is a plain dict (tensors, numbers, strings, lists and dicts of them, e.g.
``{"config": {...}, "state_dict": {...}}``); the dataset can hand out a typed artifact built
from it (``artifact:``). Saving writes a temporary file next to the target
and renames it, so an interrupted save never leaves a file that looks complete (which
``--only-missing-outputs`` would trust). Loading uses ``torch.load(weights_only=True)``, so a
checkpoint cannot run code.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import fsspec
import torch
from kedro.io.core import (
    AbstractVersionedDataset,
    DatasetError,
    Version,
    get_filepath_str,
    get_protocol_and_path,
)
from kedro.utils import load_obj

from clip_reid.load_errors import load_failure


class AtomicFileDataset(AbstractVersionedDataset):
    """A versioned single-file dataset that writes a temporary file and renames it into place.

    Subclasses say how to turn data into bytes (``_write``) and back (``_read``).
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

    def _write(self, data: Any, stream: BinaryIO) -> None:
        raise NotImplementedError

    def _read(self, stream: BinaryIO, path: str) -> Any:
        raise NotImplementedError

    def load(self) -> Any:
        path = get_filepath_str(self._get_load_path(), self._protocol)
        with self._fs.open(path, "rb") as stream:
            return self._read(stream, path)

    def save(self, data: Any) -> None:
        path = get_filepath_str(self._get_save_path(), self._protocol)
        if self._protocol == "file":
            _save_atomically(lambda stream: self._write(data, stream), Path(path))
        else:  # object stores publish a file only when its upload completes
            with self._fs.open(path, "wb") as stream:
                self._write(data, stream)
        self._fs.invalidate_cache(get_filepath_str(self._filepath, self._protocol))

    def _exists(self) -> bool:
        try:
            path = get_filepath_str(self._get_load_path(), self._protocol)
        except DatasetError:
            return False
        return self._fs.exists(path)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "protocol": self._protocol, "version": self._version}


class TorchCheckpointDataset(AtomicFileDataset):
    """Save/load a checkpoint with ``torch.save`` / ``torch.load(weights_only=True)``.

    With ``artifact`` (the import path of a class with ``to_state()`` and
    ``from_state(state, source)``, e.g. ``clip_reid.modeling.ReidCheckpoint``, or of a function
    ``(state, source) -> object``) the dataset saves ``data.to_state()`` and returns the typed
    object; the file stays a plain dict. Without it, a plain dict.

    Example catalog entry::

        reid_model:
          type: clip_reid.io.TorchCheckpointDataset
          filepath: data/06_models/reid_model.pt
          artifact: clip_reid.modeling.ReidCheckpoint
          versioned: true
    """

    def __init__(self, *, filepath: str, artifact: str | None = None,
                 version: Version | None = None, credentials: dict[str, Any] | None = None,
                 fs_args: dict[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        super().__init__(filepath=filepath, version=version, credentials=credentials,
                         fs_args=fs_args, metadata=metadata)
        self._artifact_path = artifact
        self._artifact = load_obj(artifact) if artifact else None

    def _write(self, data: Any, stream: BinaryIO) -> None:
        if self._artifact is not None:
            expected = self._artifact if isinstance(self._artifact, type) else object
            if not isinstance(data, expected) or not hasattr(data, "to_state"):
                raise DatasetError(f"{self._filepath} holds a {self._artifact_path}, got "
                                   f"{type(data).__name__}.")
            data = data.to_state()
        if not isinstance(data, dict):
            raise DatasetError(f"A checkpoint must be a dict, got {type(data).__name__}.")
        torch.save(data, stream)

    def _read(self, stream: BinaryIO, path: str) -> Any:
        try:
            state = torch.load(stream, map_location="cpu", weights_only=True)
        except Exception as error:
            raise DatasetError(
                f"Cannot load checkpoint {path}: {load_failure(error, _start(stream))}. The file "
                "is damaged or not a checkpoint written by this project; delete it and re-run "
                "the stage that writes it."
            ) from error
        if self._artifact is None:
            return state
        try:
            return getattr(self._artifact, "from_state", self._artifact)(state, path)
        except ValueError as error:
            raise DatasetError(str(error)) from error

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "artifact": self._artifact_path}


def _start(stream: BinaryIO) -> bytes | None:
    """The first bytes of ``stream`` (None if it cannot be re-read)."""
    try:
        stream.seek(0)
        return stream.read(16)
    except (OSError, ValueError):
        return None


class OnnxModelDataset(AtomicFileDataset):
    """An ONNX model as the bytes of a ``.onnx`` file (what onnxruntime sessions take)."""

    def _write(self, data: bytes, stream: BinaryIO) -> None:
        if not isinstance(data, bytes | bytearray) or not data:
            raise DatasetError("An ONNX model must be non-empty bytes.")
        stream.write(data)

    def _read(self, stream: BinaryIO, path: str) -> bytes:
        return stream.read()


def _save_atomically(write: Callable[[BinaryIO], None], path: Path) -> None:
    """Write to a hidden temporary file in the target folder, then rename over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
