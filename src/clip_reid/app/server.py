"""The page's web server (FastAPI, which the project already has through mlflow and kedro-viz):
the page itself, a JSON search endpoint, and the gallery crops by row."""

from __future__ import annotations

import mimetypes
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from clip_reid.app.request_gate import RequestGate
from clip_reid.app.search import SearchService
from clip_reid.inference.gallery_filter import GalleryFilter
from clip_reid.inference.images import DEFAULT_MAX_PIXELS, InvalidImageError

MAX_REQUEST_CHARS = 20_000_000  # base64 of a ~15 MB image
MAX_BODY_BYTES = MAX_REQUEST_CHARS + 4096  # the JSON around it; refused from the header beyond


class Query(BaseModel):
    image: str | None = None  # base64 or data URL of the encoded image
    text: str | None = None
    cameras: str | None = None  # only crops of these cameras: "3;4;5"
    # only crops with time_from <= timestamp <= time_to (seconds); strings are checked by
    # GalleryFilter, so a typo gets its reason back (400) rather than a schema error (422)
    time_from: float | str | None = None
    time_to: float | str | None = None


def create_app(service: SearchService | None, title: str, problem: str | None = None) -> FastAPI:
    """The page over ``service``; with no service (no trained model yet) the page shows
    ``problem`` instead of a search form."""
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(RequestGate, max_body_bytes=MAX_BODY_BYTES)
    page = files("clip_reid.app").joinpath("page.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/api/status")
    def status() -> dict[str, Any]:
        if service is None:
            return {"ready": False, "problem": problem, "title": title}
        return {"ready": True, "title": title, "gallery_size": len(service.gallery),
                "text": service.supports_text, "top_k": service.top_k,
                "threshold": service.threshold, "text_threshold": service.text_threshold,
                "model": service.extractor.fingerprint,
                "max_pixels": DEFAULT_MAX_PIXELS}

    @app.post("/api/search")
    def search(query: Query) -> dict[str, Any]:
        if service is None:
            raise HTTPException(503, problem)
        if (query.image is None) == (query.text is None):
            raise HTTPException(400, "Send either an image or a text, not both or neither.")
        try:
            where = GalleryFilter.from_fields(query.cameras, query.time_from, query.time_to)
            if query.image is not None:
                if len(query.image) > MAX_REQUEST_CHARS:
                    raise HTTPException(413, "The image is too large: send a person crop.")
                return service.search_image(query.image, where)
            return service.search_text(query.text, where)
        except (InvalidImageError, ValueError) as error:
            raise HTTPException(400, str(error)) from None

    @app.get("/api/crop/{row}")
    def crop(row: int) -> Response:
        if service is None:
            raise HTTPException(503, problem)
        try:
            content = service.crop(row)
            media = mimetypes.guess_type(service.path(row))[0] or "image/jpeg"
            return Response(content, media_type=media, headers={"Cache-Control": "max-age=3600"})
        except IndexError as error:
            raise HTTPException(404, str(error)) from None

    return app
