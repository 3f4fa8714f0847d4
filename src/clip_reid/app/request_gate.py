"""The search page's gate, in front of the web app: a body over the limit is refused from its
Content-Length header (or as soon as a streamed body passes it) without being read, and at most
``concurrent`` searches run at once. Waiting searches have not read their bodies yet, so
parallel uploads hold no memory while they wait; after each search the memory it freed goes
back to the OS. The served model has the same limits (``inference.serving``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import HTTPException

from clip_reid.inference.memory import release_freed_memory

Scope = dict[str, Any]


class RequestGate:
    """ASGI middleware gating the POSTs to ``paths``."""

    def __init__(self, app: Any, max_body_bytes: int, concurrent: int = 1,
                 paths: tuple[str, ...] = ("/api/search",)) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.paths = paths
        self._slots = asyncio.Semaphore(concurrent)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _refuse(send, self._too_large(f"{declared:,} bytes"))
            return
        async with self._slots:
            try:
                await self.app(scope, self._limited(receive), send)
            finally:
                release_freed_memory()

    def _too_large(self, size: str) -> str:
        return (f"The request body is {size}, more than the {self.max_body_bytes:,} this page "
                "accepts: send a person crop (a few hundred pixels a side), not a full frame.")

    def _limited(self, receive: Any) -> Any:
        """``receive`` that stops a streamed body (no Content-Length) once over the limit."""
        received = 0

        async def limited() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:
                raise HTTPException(413, self._too_large(f"over {received:,} bytes"))
            return message

        return limited


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return None


async def _refuse(send: Any, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
