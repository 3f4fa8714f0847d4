"""The picture of one text query: the sentence as title, its top-k gallery crops below, each
with its identity and cosine similarity (built without pyplot, like metrics.plots); and one
picture per sentence of a text search, named for saving."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from clip_reid.metrics.plots import cell_image

FRAME = (255, 255, 255)
TITLE_WIDTH = 90
MAX_FILE_NAME = 60


def plot_text_query(
    sentence: str, paths: Sequence[str | Path], pids: Sequence[int],
    similarities: Sequence[float], image_size: tuple[int, int] = (64, 128),
) -> Figure:
    """One row: the ``paths`` crops in rank order, titled "rank. pid <pid>" and the similarity.
    ``image_size`` is (width, height) of each cell."""
    if not len(paths) == len(pids) == len(similarities) or not paths:
        raise ValueError(
            f"Need as many pids ({len(pids)}) and similarities ({len(similarities)}) as crops "
            f"({len(paths)}), and at least one crop."
        )
    figure = Figure(figsize=(max(1.1 * len(paths), 4), 3.0), layout="constrained")
    figure.suptitle("\n".join(textwrap.wrap(sentence, TITLE_WIDTH)), fontsize=9)
    grid = figure.subplots(1, len(paths), squeeze=False)[0]
    for rank, (axes, path, pid, similarity) in enumerate(
        zip(grid, paths, pids, similarities, strict=True)
    ):
        axes.set_axis_off()
        axes.imshow(cell_image(path, image_size, 2, FRAME))
        axes.set_title(f"{rank + 1}. pid {pid}\n{similarity:.3f}", fontsize=7)
    return figure


def plot_text_search(results: pd.DataFrame) -> dict[str, Figure]:
    """One picture per sentence of ``results`` (columns query, rank, pid, path, similarity, as
    ``inference.text_search.search_by_text`` returns), keyed by a file name in query order."""
    return {
        _figure_name(number, query): plot_text_query(
            query, answers["path"].tolist(), answers["pid"].tolist(),
            answers["similarity"].tolist(),
        )
        for number, (query, answers) in enumerate(results.groupby("query", sort=False))
    }


def _figure_name(number: int, query: str) -> str:
    """'01_a-woman-in-a-red-top.png': numbered in query order, readable, file-system safe."""
    slug = re.sub(r"[^a-z0-9]+", "-", query.lower()).strip("-")[:MAX_FILE_NAME] or "query"
    return f"{number + 1:02d}_{slug}.png"
