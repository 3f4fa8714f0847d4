"""Turn whatever a caller or a REST request sends (path, bytes, base64, PIL image, array) into a
validated RGB image, so bad input fails here with a message instead of deep inside the model."""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

DEFAULT_MIN_SIDE = 16
# A person crop needs far less (a full-HD frame is 2.1 Mpx); PIL's own limit (89.5 Mpx) lets a
# 79 kB 9000x9000 PNG take ~630 MB. 16.8 Mpx (4096x4096) is at most ~67 MB once decoded.
DEFAULT_MAX_PIXELS = 4096 * 4096
# All images of one request together: 32 images at the per-image limit would decode to ~2 GB.
DEFAULT_MAX_REQUEST_PIXELS = 4 * DEFAULT_MAX_PIXELS
# Modes whose conversion to RGB keeps the picture; 16-bit and float modes would be clipped.
CONVERTIBLE_MODES = frozenset({"RGB", "RGBA", "RGBX", "RGBa", "L", "LA", "La", "1", "P", "PA",
                               "CMYK", "YCbCr"})
_DATA_URL_PREFIX = "data:"


class InvalidImageError(ValueError):
    """An input image cannot be used; the message names the item, the problem and the fix."""


class ImageTooLargeError(InvalidImageError):
    """More pixels than allowed: refused from the header, before the pixels are decoded."""


class RequestTooLargeError(ImageTooLargeError):
    """The images of one request together have more pixels than allowed."""


class PixelBudget:
    """The pixels all images of one request may decode together; each image's header is
    charged before its pixels are decoded, so a request over budget stops there."""

    def __init__(self, limit: int, setting: str = "max_request_pixels") -> None:
        self.limit, self.setting, self.used = int(limit), setting, 0

    def charge(self, label: str, pixels: int) -> None:
        self.used += pixels
        if self.used > self.limit:
            raise RequestTooLargeError(
                f"{label}: with it the request's images come to {self.used:,} pixels, more than "
                f"the {self.limit:,} one request may decode ({self.setting}). Send fewer or "
                "smaller images per request (person crops are a few hundred pixels a side)."
            )


def decode_image(
    item: Any, name: str | None = None, min_side: int = DEFAULT_MIN_SIDE,
    allow_paths: bool = True, max_pixels: int | None = DEFAULT_MAX_PIXELS,
    budget: PixelBudget | None = None,
) -> Image.Image:
    """``item`` as a fully decoded RGB PIL image.

    Accepts a filesystem path (str or Path), encoded bytes (JPEG, PNG, ...), a base64 string
    (plain or a ``data:image/...;base64,`` URL), a PIL image or an HxWx3 uint8 array. ``name``
    labels the item in error messages (default: the path, or "the image"). A server passes
    ``allow_paths=False`` so that clients cannot make it read its own files. Images of more than
    ``max_pixels`` (width x height; None = PIL's limit only) raise ImageTooLargeError, read from
    the header before decoding, so an oversized upload costs no memory; ``budget`` is charged
    with the image's pixels at the same moment (RequestTooLargeError once exhausted).
    """
    label = _label(name, item if isinstance(item, Path) else None)
    limit = _PixelLimit(max_pixels, label, budget)
    if not allow_paths and isinstance(item, Path):
        raise InvalidImageError(f"{label}: file paths are not accepted here; send the image "
                                "bytes base64-encoded.")
    if isinstance(item, Image.Image):
        image = limit.checked(item)
    elif isinstance(item, np.ndarray):
        image = limit.checked(_from_array(item, label))
    elif isinstance(item, Path):
        image = _open_file(item, label, limit)
    elif isinstance(item, bytes | bytearray | memoryview):
        image = _open_bytes(bytes(item), label, "encoded image bytes", limit)
    elif isinstance(item, str):
        image = _from_string(item, name, allow_paths, limit)
    else:
        raise InvalidImageError(
            f"{label}: unsupported input type {type(item).__name__}. Pass a file path, encoded "
            "image bytes, a base64 string, a PIL image or an HxWx3 uint8 numpy array."
        )
    return _checked_rgb(image, label, min_side)


def _label(name: str | None, source: str | Path | None) -> str:
    """How errors name the item: the caller's name, plus the path (or the start of a string)."""
    if source is None:
        return name or "the image"
    text = str(source) if len(str(source)) <= 80 else f"{str(source)[:77]}..."
    return f"{name} ({text!r})" if name else repr(text)


class _PixelLimit:
    """The ``max_pixels`` check, applied to an opened image before its pixels are decoded."""

    def __init__(self, max_pixels: int | None, label: str,
                 budget: PixelBudget | None = None) -> None:
        if max_pixels is not None and (isinstance(max_pixels, bool) or int(max_pixels) < 1):
            raise ValueError(f"max_pixels must be a positive integer or None, got {max_pixels!r}.")
        self.max_pixels = max_pixels
        self.label = label
        self.budget = budget

    def checked(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        if self.max_pixels is not None and width * height > self.max_pixels:
            raise ImageTooLargeError(
                f"{self.label}: {width}x{height} is {width * height:,} pixels, more than the "
                f"{self.max_pixels:,} allowed. Send the person crop (a few hundred pixels a side) "
                "or downscale the image; a server's limit is its max_pixels setting."
            )
        if self.budget is not None:
            self.budget.charge(self.label, width * height)
        return image


def _from_string(text: str, name: str | None, allow_paths: bool,
                 limit: _PixelLimit) -> Image.Image:
    stripped = text.strip()
    if stripped.startswith(_DATA_URL_PREFIX):
        return _from_base64(stripped.split(",", 1)[-1], name or "the data URL", limit)
    if allow_paths and _is_file(Path(text)):
        return _open_file(Path(text), _label(name, text), limit)
    label = _label(name, text)
    try:
        raw = _b64decode(stripped)
    except ValueError:
        if not allow_paths:
            raise InvalidImageError(
                f"{label}: is not valid base64 (file paths are not accepted here). Send the "
                "image file's bytes base64-encoded."
            ) from None
        raise InvalidImageError(
            f"{label}: is neither an existing file nor valid base64 (tried both). Pass the path "
            "of an existing image file, or the image bytes base64-encoded."
        ) from None
    context = "it is not an existing file, and decoded as base64 it" if allow_paths else (
        "decoded as base64 it")
    return _open_bytes(raw, label, context, limit)


def _from_base64(payload: str, label: str, limit: _PixelLimit) -> Image.Image:
    try:
        raw = _b64decode(payload)
    except ValueError:
        raise InvalidImageError(
            f"{label}: the data URL is not valid base64. Encode the "
            "image file's bytes with base64 (e.g. base64.b64encode(open(path, 'rb').read()))."
        ) from None
    return _open_bytes(raw, label, "base64 data", limit)


def _b64decode(text: str) -> bytes:
    compact = "".join(text.split())
    if not compact:
        raise ValueError("empty")
    try:
        return base64.b64decode(compact, validate=True)
    except binascii.Error as error:
        raise ValueError(str(error)) from error


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # too long for a file name, or NUL bytes: base64 perhaps
        return False


def _open_file(path: Path, label: str, limit: _PixelLimit) -> Image.Image:
    if not _is_file(path):
        raise InvalidImageError(
            f"{label}: no such file. Check the path (relative paths are resolved from "
            f"{Path.cwd()})."
        )
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise InvalidImageError(
            f"{label}: cannot read the file ({error}). Check its permissions."
        ) from None
    return _open_bytes(raw, label, "the file", limit)


def _open_bytes(raw: bytes, label: str, source: str, limit: _PixelLimit) -> Image.Image:
    """Decode fully now (PIL is lazy), treating PIL's decompression-bomb warning as an error;
    the pixel limit is checked on the header, before decoding."""
    if not raw:
        raise InvalidImageError(f"{label}: {source} is empty. Send the image's encoded bytes.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = limit.checked(Image.open(io.BytesIO(raw)))
            image.load()
    except ImageTooLargeError:  # RequestTooLargeError included
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise InvalidImageError(
            f"{label}: refused as a possible decompression bomb ({error}). Send a person crop, "
            "not a full-resolution frame, or raise PIL.Image.MAX_IMAGE_PIXELS if it is genuine."
        ) from None
    except (OSError, ValueError, SyntaxError) as error:
        raise InvalidImageError(
            f"{label}: {source} is not a readable image ({error}). Send a complete JPEG, PNG, "
            "BMP or WebP file; a truncated upload or a non-image file looks like this."
        ) from None
    return image


def _from_array(array: np.ndarray, label: str) -> Image.Image:
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise InvalidImageError(
            f"{label}: an image array must be HxWx3 uint8 (RGB), got shape {array.shape} and "
            f"dtype {array.dtype}. Convert it, e.g. np.clip(a * 255, 0, 255).astype(np.uint8) "
            "for floats in [0, 1], or np.stack([a] * 3, axis=-1) for grey."
        )
    return Image.fromarray(np.ascontiguousarray(array), mode="RGB")


def _checked_rgb(image: Image.Image, label: str, min_side: int) -> Image.Image:
    if image.mode not in CONVERTIBLE_MODES:
        raise InvalidImageError(
            f"{label}: unsupported pixel mode {image.mode!r} (16-bit or floating-point images "
            "lose their range when converted). Save it as 8-bit RGB or greyscale."
        )
    width, height = image.size
    if min(width, height) < min_side:
        raise InvalidImageError(
            f"{label}: {width}x{height} pixels is too small (minimum side {min_side} px). Send "
            "the person crop itself, not a thumbnail or an empty box."
        )
    try:
        return image.convert("RGB")  # same conversion as evaluation's read_rgb
    except (OSError, ValueError) as error:
        raise InvalidImageError(
            f"{label}: cannot convert mode {image.mode!r} to RGB ({error}). Re-save it as RGB."
        ) from None
