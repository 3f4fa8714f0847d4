"""The picture of one text query: the sentence as title, its top-k gallery crops below, each
with its identity and cosine similarity (built without pyplot, like metrics.plots)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from clip_reid.metrics.plots import cell_image

FRAME = (255, 255, 255)
TITLE_WIDTH = 90


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
