"""Limits of a served model facing untrusted clients: how much one request may make it decode,
how many requests decode at once, and which gallery paths an answer may reveal."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pandas as pd

from clip_reid.inference.images import DEFAULT_MAX_PIXELS, DEFAULT_MAX_REQUEST_PIXELS
from clip_reid.inference.memory import release_freed_memory
from clip_reid.settings_base import Settings, setting

PATH_MODES = ("relative", "absolute", "none")
DEFAULT_MAX_RECORDS = 32
DEFAULT_CONCURRENT_REQUESTS = 1


class TooManyRecordsError(ValueError):
    """A request carries more records than the server's max_records."""


@dataclass(frozen=True)
class ServingSettings(Settings):
    """``max_pixels`` per image and ``max_request_pixels`` for all images of a request (both
    refused from the headers, before decoding); ``max_records`` per request;
    ``concurrent_requests`` decoded and embedded at once (the others wait). Images are decoded
    and embedded a chunk at a time and freed memory is returned after each request, so memory
    is bounded by concurrent_requests x one chunk, whatever the number of parallel clients;
    ``paths``: gallery paths in answers "relative" to ``path_root`` (None = the gallery
    images' common folder), "absolute" (the server's own paths) or "none"."""

    max_pixels: int = setting(DEFAULT_MAX_PIXELS, ge=1)
    max_request_pixels: int = setting(DEFAULT_MAX_REQUEST_PIXELS, ge=1)
    max_records: int = setting(DEFAULT_MAX_RECORDS, ge=1)
    concurrent_requests: int = setting(DEFAULT_CONCURRENT_REQUESTS, ge=1)
    paths: str = setting("relative", choices=PATH_MODES)
    path_root: str | None = None

    def check_records(self, count: int) -> None:
        if count > self.max_records:
            raise TooManyRecordsError(
                f"The request has {count} records, more than the {self.max_records} this server "
                "accepts at once (inference.serving.max_records): split it into smaller requests."
            )


_gates: dict[int, threading.BoundedSemaphore] = {}
_gates_lock = threading.Lock()


@contextmanager
def request_slot(settings: ServingSettings) -> Iterator[None]:
    """Hold one of ``concurrent_requests`` slots (shared by the process) while decoding; on
    leaving, return the memory the request freed to the OS."""
    with _gates_lock:
        gate = _gates.setdefault(settings.concurrent_requests,
                                 threading.BoundedSemaphore(settings.concurrent_requests))
    with gate:
        try:
            yield
        finally:
            release_freed_memory()


def shown_paths(found: pd.DataFrame, gallery_paths: list[str],
                settings: ServingSettings) -> pd.DataFrame:
    """``found`` with its ``topk_paths`` as the settings say (the frame is changed in place)."""
    if settings.paths == "absolute":
        return found
    if settings.paths == "none":
        return found.drop(columns="topk_paths")
    root = settings.path_root or common_folder(gallery_paths)
    found["topk_paths"] = [[_relative(path, root) for path in ranked]
                           for ranked in found["topk_paths"]]
    return found


def common_folder(paths: list[str]) -> str:
    if not paths:
        return ""
    try:
        common = os.path.commonpath(paths)
    except ValueError:  # absolute and relative paths mixed: nothing in common
        return ""
    return common if len(paths) > 1 or common != paths[0] else os.path.dirname(common)


def _relative(path: str, root: str) -> str:
    """``path`` below ``root`` as a POSIX relative path; a path outside it keeps only its name,
    so no server folder leaks."""
    if root:
        relative = os.path.relpath(path, root)
        if not relative.startswith(os.pardir):
            return relative.replace(os.sep, "/")
    return os.path.basename(path)
