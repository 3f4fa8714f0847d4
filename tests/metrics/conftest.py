"""Random ranking problems for the metrics tests (fixtures, so test modules need no imports)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest


@dataclass(frozen=True)
class Problem:
    distmat: np.ndarray
    q_pids: np.ndarray
    g_pids: np.ndarray
    q_camids: np.ndarray
    g_camids: np.ndarray

    def labels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self.q_pids, self.g_pids, self.q_camids, self.g_camids


def random_problem(
    seed: int,
    num_query: int = 20,
    num_gallery: int = 60,
    num_ids: int = 6,
    num_cams: int = 3,
    ties: bool = False,
) -> Problem:
    """Labels with junk (-1) and distractors (0) mixed in; integer distances when ``ties``."""
    rng = np.random.default_rng(seed)
    q_pids = rng.integers(1, num_ids + 1, num_query)
    g_pids = rng.integers(-1, num_ids + 1, num_gallery)
    shape = (num_query, num_gallery)
    distmat = rng.integers(0, 4, shape).astype(np.float32) if ties else rng.random(shape)
    return Problem(
        distmat, q_pids, g_pids, rng.integers(0, num_cams, num_query),
        rng.integers(0, num_cams, num_gallery),
    )


@pytest.fixture
def make_problem() -> Callable[..., Problem]:
    return random_problem
