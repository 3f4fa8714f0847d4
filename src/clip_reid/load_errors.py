"""Why a checkpoint file did not load, in words: torch says ``KeyError: 101`` for a text file,
an empty ``EOFError`` for an empty one, and "could run code" for random bytes. Shared by every
place that loads one (catalog datasets, CLIP weights, FeatureExtractor); no kedro imports.
"""

from __future__ import annotations

# A checkpoint torch.save writes is a zip archive; its legacy format a pickle (protocol 2+).
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_START = b"\x80"


def not_a_checkpoint(start: bytes) -> str | None:
    """Why a file beginning with ``start`` cannot be a torch checkpoint, or None."""
    if not start:
        return "the file is empty (0 bytes)"
    if not start.startswith((_ZIP_MAGIC, _PICKLE_START)):
        return (f"it is not a checkpoint file (neither a zip archive nor a pickle; it starts "
                f"with {start[:16]!r})")
    return None


def load_failure(error: Exception, start: bytes | None) -> str:
    """Why torch.load failed, for a message: what the file's first bytes ``start`` (None when
    unknown) show, else torch's own reason on one line (never an empty one)."""
    return ((start is not None and not_a_checkpoint(start))
            or " ".join(str(error).split()) or type(error).__name__)
