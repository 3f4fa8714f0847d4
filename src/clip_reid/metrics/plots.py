"""Evaluation figures as ``matplotlib.figure.Figure`` objects.

Built without pyplot, so no global figure state leaks between calls and any backend (Agg in a
pipeline, inline in a notebook) works; saving is the caller's job (e.g. a catalog dataset).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from PIL import Image, ImageOps

from clip_reid.metrics.inputs import to_numpy

MATCH_COLOUR = (0, 170, 0)
MISMATCH_COLOUR = (220, 0, 0)


def plot_cmc_curve(cmc: Any, label: str | None = None, title: str = "CMC curve") -> Figure:
    """Rank-k accuracy (%) against k = 1..len(cmc), one axes."""
    curve = to_numpy(cmc, "cmc").astype(np.float64)
    if curve.ndim != 1 or curve.size == 0:
        raise ValueError(f"cmc must be a non-empty 1-d curve, got shape {curve.shape}.")
    figure = Figure(figsize=(5, 4), layout="constrained")
    axes = figure.add_subplot()
    ranks = np.arange(1, len(curve) + 1)
    axes.plot(ranks, 100 * curve, marker="." if len(curve) <= 50 else None, label=label)
    axes.set(title=title, xlabel="rank", ylabel="matching rate (%)", xlim=(1, max(len(curve), 2)))
    axes.set_ylim(top=100)
    axes.grid(True, alpha=0.3)
    if label:
        axes.legend(loc="lower right")
    return figure


def plot_ranked_results(
    query_paths: Sequence[str | Path],
    gallery_paths: Sequence[str | Path],
    ranked_indices: Any,
    matches: Any,
    top_k: int = 10,
    query_titles: Sequence[str] | None = None,
    image_size: tuple[int, int] = (64, 128),
    border: int = 6,
) -> Figure:
    """A grid, one row per query: the query image, then its ``top_k`` gallery images with a
    green border for the same identity and red for another.

    ``ranked_indices`` and ``matches`` are (num_query, >= top_k) as returned by
    :func:`clip_reid.metrics.top_k_ranked` for the chosen queries (index -1 = empty cell).
    ``image_size`` is (width, height) of each cell.
    """
    indices = to_numpy(ranked_indices, "ranked_indices")
    hits = to_numpy(matches, "matches").astype(bool)
    num_query = len(query_paths)
    if indices.ndim != 2 or indices.shape[0] != num_query or indices.shape[1] < top_k:
        raise ValueError(
            f"ranked_indices must be ({num_query}, >= {top_k}) for {num_query} queries, "
            f"got shape {indices.shape}."
        )
    if hits.shape != indices.shape:
        raise ValueError(f"matches has shape {hits.shape} but ranked_indices {indices.shape}.")
    if query_titles is not None and len(query_titles) != num_query:
        raise ValueError(f"query_titles has {len(query_titles)} entries for {num_query} queries.")

    figure = Figure(figsize=(1.0 * (top_k + 1), 2.0 * max(num_query, 1)), layout="constrained")
    grid = figure.subplots(max(num_query, 1), top_k + 1, squeeze=False)
    for axes in grid.ravel():
        axes.set_axis_off()
    for row in range(num_query):
        query_cell = grid[row, 0]
        query_cell.imshow(cell_image(query_paths[row], image_size, border, (255, 255, 255)))
        query_cell.set_title(query_titles[row] if query_titles else "query", fontsize=8)
        for rank in range(top_k):
            gallery_index = int(indices[row, rank])
            if gallery_index < 0:
                continue
            colour = MATCH_COLOUR if hits[row, rank] else MISMATCH_COLOUR
            cell = grid[row, rank + 1]
            cell.imshow(cell_image(gallery_paths[gallery_index], image_size, border, colour))
            cell.set_title(str(rank + 1), fontsize=8)
    return figure


def cell_image(
    path: str | Path, size: tuple[int, int], border: int, colour: tuple[int, int, int]
) -> np.ndarray:
    """The image at ``path`` resized to ``size`` inside a ``border``-pixel frame of ``colour``."""
    try:
        with Image.open(path) as image:
            resized = image.convert("RGB").resize(size)
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"Image {path} listed in the ranked results does not exist: check the image index."
        ) from error
    return np.asarray(ImageOps.expand(resized, border=border, fill=colour))
