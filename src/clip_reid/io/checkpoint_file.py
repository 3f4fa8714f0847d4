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


class CheckpointFileError(ValueError):
    """A checkpoint file is empty, truncated, or holds more than tensors and plain values."""


def load_checkpoint_file(path: Path | str, remedy: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; failures raise
    :class:`CheckpointFileError` naming the file, its size and ``remedy`` (what writes it)."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointFileError(
            f"Refused to load {path}: it holds objects other than tensors and plain values "
            f"({reason}), and loading them could run code. Load only checkpoints written by "
            f"clip-reid; {remedy}."
        ) from error
    except (EOFError, RuntimeError) as error:
        size = path.stat().st_size if path.is_file() else 0
        raise CheckpointFileError(
            f"Cannot load the checkpoint {path} ({size:,} bytes): {error or 'it ends early'}. "
            f"The file is empty or truncated (an interrupted copy or download?): {remedy}."
        ) from error
