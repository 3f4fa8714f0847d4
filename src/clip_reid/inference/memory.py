"""Give memory a request freed back to the operating system.

glibc's malloc keeps freed blocks in its arenas for reuse, and a threaded server has one arena
per thread: after a burst of large image requests the process stays gigabytes large though
nothing is in use (measured: 8 requests of 32 large PNGs left a served model at 12 GB).
``malloc_trim`` returns those free pages; on other C libraries this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def release_freed_memory() -> None:
    """Return the heap's free pages to the OS (glibc); nothing elsewhere."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
