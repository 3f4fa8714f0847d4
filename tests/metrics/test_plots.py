"""Figures are returned (never shown or saved) with the expected axes and colours."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from PIL import Image

from clip_reid.metrics import plot_cmc_curve, plot_ranked_results
from clip_reid.metrics.plots import MATCH_COLOUR, MISMATCH_COLOUR
from clip_reid.metrics.text_plots import plot_text_search


def test_cmc_curve_is_one_axes_in_percent():
    figures_before = plt.get_fignums()
    figure = plot_cmc_curve(np.array([0.5, 0.75, 1.0]), label="RN50")
    assert isinstance(figure, Figure) and len(figure.axes) == 1
    line = figure.axes[0].lines[0]
    assert line.get_xdata().tolist() == [1, 2, 3]
    assert line.get_ydata().tolist() == [50.0, 75.0, 100.0]
    assert plt.get_fignums() == figures_before  # no pyplot state touched


def test_cmc_curve_rejects_an_empty_curve():
    with pytest.raises(ValueError, match="non-empty 1-d curve"):
        plot_cmc_curve(np.array([]))


@pytest.fixture
def images(tmp_path):
    paths = []
    for i in range(6):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (32, 64), (40 * i, 40 * i, 40 * i)).save(path)
        paths.append(str(path))
    return paths


def corner(axes) -> tuple[int, ...]:
    """The top-left pixel of the image shown in ``axes``: the border colour."""
    return tuple(axes.images[0].get_array()[0, 0].tolist())


def test_ranked_results_grid_and_borders(images):
    indices = np.array([[1, 2, 3], [4, 5, -1]])
    matches = np.array([[True, False, True], [False, True, False]])
    figure = plot_ranked_results(
        images[:2], images, indices, matches, top_k=3, query_titles=["worst", "best"], border=4
    )
    assert isinstance(figure, Figure) and len(figure.axes) == 2 * 4
    grid = np.array(figure.axes).reshape(2, 4)
    assert grid[0, 0].get_title() == "worst"
    assert corner(grid[0, 1]) == MATCH_COLOUR
    assert corner(grid[0, 2]) == MISMATCH_COLOUR
    assert grid[0, 1].images[0].get_array().shape == (128 + 8, 64 + 8, 3)
    assert not grid[1, 3].images  # index -1: empty cell


def test_ranked_results_check_shapes_and_files(images):
    with pytest.raises(ValueError, match=r"ranked_indices must be \(1, >= 10\)"):
        plot_ranked_results(images[:1], images, np.zeros((1, 3), int), np.zeros((1, 3), bool))
    with pytest.raises(FileNotFoundError, match="missing.png listed in the ranked results"):
        plot_ranked_results(["missing.png"], images, [[0]], [[True]], top_k=1)


def test_text_search_gives_one_named_picture_per_sentence_in_query_order(images):
    results = pd.DataFrame({
        "query": ["A woman, red top!", "A woman, red top!", "??", "??"], "rank": [1, 2, 1, 2],
        "pid": [3, 4, 5, 6], "path": images[:4], "similarity": [0.9, 0.8, 0.7, 0.6]})
    figures = plot_text_search(results)
    assert list(figures) == ["01_a-woman-red-top.png", "02_query.png"]
    axes = figures["01_a-woman-red-top.png"].axes
    assert [a.get_title() for a in axes] == ["1. pid 3\n0.900", "2. pid 4\n0.800"]
