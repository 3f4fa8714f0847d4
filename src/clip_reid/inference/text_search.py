"""Search a gallery with sentences: which sentences (settings and/or a file), and the top-k
gallery images of each as one table, for `kedro run --pipelines text_search`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from clip_reid.inference.extractor import FeatureExtractor
from clip_reid.inference.gallery_filter import GalleryFilter
from clip_reid.inference.gallery_store import Gallery
from clip_reid.settings_base import Settings, setting

logger = logging.getLogger(__name__)

SEPARATOR = ";"
RESULT_COLUMNS = ["query", "rank", "pid", "camid", "path", "similarity"]


@dataclass(frozen=True)
class TextSearchSettings(Settings):
    """Sentences from the parameters and/or a file; the top-k gallery images of each."""

    queries: tuple[str, ...] | str | None = None  # a list, or one string with ";" between
    queries_file: str | None = None  # a UTF-8 .txt file, one sentence per line
    top_k: int = setting(10, ge=1)
    truncate: bool = False  # over 75 BPE tokens: refused (false) or the first 75 kept (true)
    batch_size: int = setting(64, ge=1)
    cameras: str | int | tuple[int, ...] | None = None  # only these cameras ("3;4;5"); None = all
    time_from: float | None = None  # only crops in [time_from, time_to] (seconds); None = open
    time_to: float | None = None

    def __post_init__(self) -> None:
        # a bad camera list or window stops the run at its start, not after the model loads
        object.__setattr__(self, "_where",
                           GalleryFilter.from_fields(self.cameras, self.time_from, self.time_to))

    @property
    def where(self) -> GalleryFilter | None:
        return self._where


def read_sentences(settings: TextSearchSettings) -> list[str]:
    """The sentences of ``queries`` (a list, or one string with ";" between sentences) followed
    by those of ``queries_file`` (one per line; blank lines and lines starting with # are
    skipped)."""
    given = settings.queries
    if isinstance(given, str):
        given = given.split(SEPARATOR)
    queries = [str(query).strip() for query in given or []]
    if settings.queries_file:
        file = Path(settings.queries_file)
        if not file.is_file():
            raise FileNotFoundError(f"text_search.queries_file {file} does not exist.")
        lines = file.read_text(encoding="utf-8").splitlines()
        queries += [line.strip() for line in lines
                    if line.strip() and not line.lstrip().startswith("#")]
    if not queries:
        raise ValueError(
            'No text query: run with --params "text_search.queries=a woman in a red top" '
            '(several: separate them with ";") or "text_search.queries_file=<a .txt file, one '
            'sentence per line>".'
        )
    return queries


def search_by_text(queries: list[str], extractor: FeatureExtractor, gallery: Gallery,
                   settings: TextSearchSettings) -> pd.DataFrame:
    """One row per (sentence, rank): pid, camid, path and cosine similarity of the top-k
    gallery images (``RESULT_COLUMNS``), among the cameras and time window of the settings
    (all by default); each sentence's best answer is logged."""
    extractor.checkpoint.require_model(
        gallery.fingerprint, "The gallery_index",
        "re-embed it with kedro run --pipelines inference (or pass matching --load-versions).")
    features = extractor.encode_text(queries, truncate=settings.truncate)
    found = gallery.search_text(features, k=settings.top_k, where=settings.where)
    rows = [
        {"query": query, "rank": rank + 1, "pid": pid, "camid": camid, "path": path,
         "similarity": 1.0 - distance}
        for query, pids, camids, paths, distances in zip(
            queries, found["topk_pids"], found["topk_camids"], found["topk_paths"],
            found["topk_distances"], strict=True)
        for rank, (pid, camid, path, distance) in enumerate(
            zip(pids, camids, paths, distances, strict=True))
    ]
    results = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    for query, best in results[results["rank"] == 1].set_index("query").iterrows():
        logger.info("%r -> pid %d (similarity %.3f) %s", query, best["pid"],
                    best["similarity"], best["path"])
    return results
