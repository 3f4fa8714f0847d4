"""The vectorised evaluator agrees with the per-query reference on random problems."""

import numpy as np
import pytest
from metrics.rank_oracle import evaluate_rank_reference

from clip_reid.metrics import evaluate_rank


def assert_same(fast, slow):
    np.testing.assert_allclose(fast.cmc, slow.cmc, atol=1e-12)
    assert fast.mAP == pytest.approx(slow.mAP, abs=1e-12)
    assert fast.mINP == pytest.approx(slow.mINP, abs=1e-12)
    assert fast.num_valid_queries == slow.num_valid_queries
    assert fast.num_skipped_queries == slow.num_skipped_queries
    np.testing.assert_allclose(fast.query_ap, slow.query_ap, atol=1e-12)


@pytest.mark.parametrize("ap_mode", ["standard", "market_matlab"])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_reference(make_problem, seed, ties, ap_mode):
    problem = make_problem(seed, ties=ties)
    fast = evaluate_rank(
        problem.distmat, *problem.labels(), max_rank=10, ap_mode=ap_mode, chunk_size=7
    )
    slow = evaluate_rank_reference(problem.distmat, *problem.labels(), max_rank=10, ap_mode=ap_mode)
    assert_same(fast, slow)


@pytest.mark.parametrize("seed", range(3))
def test_agrees_on_a_larger_problem_in_float32(make_problem, seed):
    problem = make_problem(seed, num_query=120, num_gallery=900, num_ids=40, num_cams=6)
    distmat = problem.distmat.astype(np.float32)
    assert_same(
        evaluate_rank(distmat, *problem.labels(), chunk_size=32),
        evaluate_rank_reference(distmat, *problem.labels()),
    )


def test_agrees_when_every_distance_is_equal(make_problem):
    problem = make_problem(0, ties=True)
    distmat = np.zeros_like(problem.distmat)
    assert_same(
        evaluate_rank(distmat, *problem.labels(), max_rank=10),
        evaluate_rank_reference(distmat, *problem.labels(), max_rank=10),
    )


def test_agrees_on_large_magnitudes_and_negative_distances(make_problem):
    problem = make_problem(1)
    distmat = (problem.distmat - 0.5) * 1e30
    assert_same(
        evaluate_rank(distmat, *problem.labels()),
        evaluate_rank_reference(distmat, *problem.labels()),
    )


def test_chunk_size_does_not_change_the_result(make_problem):
    problem = make_problem(3, num_query=50)
    results = [evaluate_rank(problem.distmat, *problem.labels(), chunk_size=c) for c in (1, 13, 64)]
    for other in results[1:]:
        assert_same(results[0], other)
