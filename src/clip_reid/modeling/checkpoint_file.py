"""Reading a checkpoint file outside the catalog (a model path given to FeatureExtractor, a saved
gallery found by the search page): tensors and plain values only, and every failure named.

torch's own errors say neither which file failed nor what to do: an empty file is a bare
``EOFError``, a truncated one a ``RuntimeError`` about zip records, and a file holding code an
``UnpicklingError`` that even suggests ``weights_only=False``, which would run that code.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from clip_reid.load_errors import not_a_checkpoint


class CheckpointFileError(ValueError):
    """A checkpoint file is empty, truncated, not a checkpoint at all, or holds more than
    tensors and plain values."""


def load_checkpoint_file(path: Path | str, remedy: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; failures raise
    :class:`CheckpointFileError` naming the file, its size and ``remedy`` (what writes it)."""
    path = Path(path)
    _check_header(path, remedy)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "global" not in str(error).lower():  # damaged data, not a refused object
            raise _damaged(path, error, remedy) from error
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointFileError(
            f"Refused to load {path}: it holds objects other than tensors and plain values "
            f"({reason}), and loading them could run code. Load only checkpoints written by "
            f"clip-reid; {remedy}."
        ) from error
    except Exception as error:  # noqa: BLE001 - torch raises EOFError, RuntimeError, KeyError...
        raise _damaged(path, error, remedy) from error


def _check_header(path: Path, remedy: str) -> None:
    """An empty file, or one that is neither a zip archive nor a pickle, is named as such
    before torch reads it (torch would say ``KeyError: 101`` for a text file)."""
    try:
        with path.open("rb") as file:
            start = file.read(16)
    except OSError as error:
        raise CheckpointFileError(f"Cannot read the checkpoint {path}: {error}; {remedy}.") \
            from None
    if not start:
        raise CheckpointFileError(
            f"Cannot load the checkpoint {path} (0 bytes): the file is empty (an interrupted "
            f"copy or download?): {remedy}.")
    problem = not_a_checkpoint(start)
    if problem:
        raise CheckpointFileError(
            f"Cannot load the checkpoint {path} ({path.stat().st_size:,} bytes): {problem}. "
            f"Check the path: {remedy}.")


def _damaged(path: Path, error: Exception, remedy: str) -> CheckpointFileError:
    reason = " ".join(str(error).split()) or f"{type(error).__name__}: it ends early"
    return CheckpointFileError(
        f"Cannot load the checkpoint {path} ({path.stat().st_size:,} bytes): {reason}. The file "
        f"is empty or truncated (an interrupted copy or download?): {remedy}."
    )
