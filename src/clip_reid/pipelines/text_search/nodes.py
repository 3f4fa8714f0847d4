"""Nodes of text_search: read the sentences, embed them, search the gallery, draw the answers.
The work is in clip_reid.inference (encode_text, search_text) and clip_reid.metrics.text_plots."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from clip_reid.inference import FeatureExtractor, GalleryIndex
from clip_reid.metrics.text_plots import plot_text_query

logger = logging.getLogger(__name__)

SEPARATOR = ";"
MAX_FILE_NAME = 60


def read_text_queries(text_search: dict[str, Any]) -> list[str]:
    """The sentences of ``text_search.queries`` (a list, or one string with ";" between
    sentences) followed by those of ``text_search.queries_file`` (one per line; blank lines and
    lines starting with # are skipped)."""
    given = text_search.get("queries")
    if isinstance(given, str):
        given = given.split(SEPARATOR)
    queries = [str(query).strip() for query in given or []]
    path = text_search.get("queries_file")
    if path:
        file = Path(path)
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


def search_gallery_by_text(
    queries: list[str], reid_model: dict[str, Any], gallery_index: dict[str, Any],
    text_search: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Figure]]:
    """One CSV row per (sentence, rank): pid, camid, path and cosine similarity of the top-k
    gallery images; and a picture per sentence with those crops."""
    extractor = FeatureExtractor(reid_model, batch_size=text_search.get("batch_size", 64))
    gallery = GalleryIndex.from_state(gallery_index)
    if gallery.fingerprint != extractor.fingerprint:
        raise ValueError(
            f"The gallery_index was embedded by model {gallery.fingerprint}, not by the latest "
            f"reid_model ({extractor.fingerprint}): re-embed it with kedro run --pipeline "
            "inference (or pass matching --load-versions)."
        )
    features = extractor.encode_text(queries, truncate=text_search.get("truncate", False))
    found = gallery.search_text(features, k=text_search.get("top_k", 10))
    camid_of = dict(zip(gallery.paths, gallery.to_state()["camids"].tolist(), strict=True))
    rows = [
        {"query": query, "rank": rank + 1, "pid": pid, "camid": camid_of[path], "path": path,
         "similarity": 1.0 - distance}
        for query, pids, paths, distances in zip(
            queries, found["topk_pids"], found["topk_paths"], found["topk_distances"], strict=True)
        for rank, (pid, path, distance) in enumerate(zip(pids, paths, distances, strict=True))
    ]
    results = pd.DataFrame(rows, columns=["query", "rank", "pid", "camid", "path", "similarity"])
    figures = {}
    for number, (query, answers) in enumerate(results.groupby("query", sort=False)):
        figures[_figure_name(number, query)] = plot_text_query(
            query, answers["path"].tolist(), answers["pid"].tolist(),
            answers["similarity"].tolist(),
        )
    for query, answers in results[results["rank"] == 1].set_index("query").iterrows():
        logger.info("%r -> pid %d (similarity %.3f) %s", query, answers["pid"],
                    answers["similarity"], answers["path"])
    return results, figures


def _figure_name(number: int, query: str) -> str:
    """'01_a-woman-in-a-red-top.png': numbered in query order, readable, file-system safe."""
    slug = re.sub(r"[^a-z0-9]+", "-", query.lower()).strip("-")[:MAX_FILE_NAME] or "query"
    return f"{number + 1:02d}_{slug}.png"
