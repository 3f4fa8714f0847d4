"""Servers the tests start on loopback: a free port, and a Milvus server in its own process."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MILVUS_START_SECONDS = 120.0  # importing milvus-lite takes ~8 s on a quiet 2-core machine


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def milvus_server(data_dir: Path) -> Iterator[tuple[str, int]]:
    """``python -m milvus_lite server`` on a free loopback port, in a process of its own: what
    a Milvus cluster is to this project (an ``http://`` uri, the rows held outside the caller).
    Yields its uri and process id; stopped after."""
    port = free_port()
    log = Path(data_dir).with_suffix(".log")
    with log.open("w") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data_dir),
             "--host", "127.0.0.1", "--port", str(port)],
            stdout=output, stderr=subprocess.STDOUT)
    try:
        _wait_for(server, port, log)
        yield f"http://127.0.0.1:{port}", server.pid
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_for(server: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + MILVUS_START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the Milvus server exited ({server.returncode}):\n"
                               f"{log.read_text()[-2000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the Milvus server did not listen on port {port} within "
                       f"{MILVUS_START_SECONDS:.0f} s:\n{log.read_text()[-2000:]}")
