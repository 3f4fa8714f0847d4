"""Children that a test stops with Ctrl-C (SIGINT), whatever this process's own disposition."""

from __future__ import annotations

import signal
import subprocess
from typing import Any


def interruptible_popen(*args: Any, **kwargs: Any) -> subprocess.Popen:
    """``subprocess.Popen`` whose child answers SIGINT as a terminal's Ctrl-C, also when the
    tests run with SIGINT ignored (a shell without job control starts background jobs so, and
    exec keeps an ignored signal): exec resets a handled signal to its default, so SIGINT is
    handled here while the child starts. (A ``preexec_fn`` would do it in the child, but forking
    a process that holds gRPC threads with Python code to run aborts the child.)"""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        return subprocess.Popen(*args, **kwargs)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(*args, **kwargs)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
