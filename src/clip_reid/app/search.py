"""What the page asks of the library: one image or one sentence (optionally limited to some
cameras and a time window) → the top-k gallery crops with identity, camera and distance, and the
predicted identity (or unknown beyond the threshold). The gallery is a GalleryIndex or a Milvus
collection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clip_reid.inference import FeatureExtractor, GalleryIndex, decode_image
from clip_reid.inference.gallery_filter import GalleryFilter
from clip_reid.inference.gallery_store import Gallery
from clip_reid.inference.milvus_gallery import image_id


def camera_name(camid: int) -> str:
    """A camera as the datasets' file names call it (Market, Duke, CUHK03: ``c1`` for the index's
    0-based camid 0), not the 0-based index."""
    return f"c{camid + 1}"


@dataclass
class SearchService:
    """The extractor and gallery of one model. Text distances (1 - cosine of the projection) are
    on another scale than image distances, hence their own threshold (None = always known)."""

    extractor: FeatureExtractor
    gallery: Gallery
    threshold: float | None = None
    text_threshold: float | None = None
    top_k: int = 10

    def __post_init__(self) -> None:
        self.extractor.checkpoint.require_model(self.gallery.fingerprint, "The gallery",
                                                "rebuild it with this model.")
        # Crops are served by row, never by a client's path: GalleryIndex rows, or a Milvus
        # image id (sent as a string: 63-bit ids lose digits as JavaScript numbers).
        if isinstance(self.gallery, GalleryIndex):
            self._paths = self.gallery.paths  # a copy: GalleryIndex.paths copies on every call
            self._rows: dict[str, int] | None = {path: row
                                                 for row, path in enumerate(self._paths)}
        else:
            self._paths, self._rows = [], None

    @property
    def supports_text(self) -> bool:
        return self.extractor.supports_text

    def search_image(self, image: Any, where: GalleryFilter | None = None) -> dict[str, Any]:
        """``image``: bytes, a base64 string or data URL, or a PIL image; never a server path
        (the page's clients must not make it read files)."""
        features = self.extractor([decode_image(image, "the query image", allow_paths=False)])
        return self._answer(self.gallery.search(features, self.top_k, self.threshold, where))

    def search_text(self, text: str, where: GalleryFilter | None = None) -> dict[str, Any]:
        if not self.supports_text:
            raise ValueError("This model's checkpoint has no text tower, so it cannot search by "
                             "description: retrain it with the current encoder_training.")
        features = self.extractor.encode_text([text], truncate=True)
        return self._answer(self.gallery.search_text(features, self.top_k, self.text_threshold,
                                                     where))

    def crop(self, row: int) -> bytes:
        """The encoded gallery image of ``row`` (rows, not paths: the page reads no file it
        names itself)."""
        with open(self.path(row), "rb") as file:
            return file.read()

    def path(self, row: int) -> str:
        if self._rows is None:
            return self.gallery.path_of(row)
        if not 0 <= row < len(self._paths):
            raise IndexError(f"No gallery image {row}: the gallery holds {len(self._paths)}.")
        return self._paths[row]

    def _answer(self, found) -> dict[str, Any]:
        top = found.iloc[0]
        results = []
        for rank, (pid, camid, path, distance) in enumerate(zip(
                top["topk_pids"], top["topk_camids"], top["topk_paths"], top["topk_distances"],
                strict=True), 1):
            row = self._rows[path] if self._rows is not None else str(image_id(path))
            results.append({"rank": rank, "pid": int(pid), "camid": int(camid),
                            "camera": camera_name(int(camid)),
                            "distance": float(distance), "row": row,
                            "name": path.replace("\\", "/").rsplit("/", 1)[-1]})
        return {"predicted": top["predicted_pid"], "distance": float(top["distance"]),
                "results": results}

