"""Top-k evaluation (truncated) and top-k ranked lists for display."""

import numpy as np
import pytest
import torch

from clip_reid.metrics import (
    FaissGalleryIndex,
    evaluate_rank,
    evaluate_topk,
    top_k_ranked,
)


def assert_same(a, b):
    np.testing.assert_allclose(a.cmc, b.cmc, atol=1e-12)
    assert a.mAP == pytest.approx(b.mAP, abs=1e-12)
    assert a.mINP == pytest.approx(b.mINP, abs=1e-12)
    assert (a.num_valid_queries, a.num_skipped_queries) == (
        b.num_valid_queries, b.num_skipped_queries,
    )


@pytest.mark.parametrize("ap_mode", ["standard", "market_matlab"])
@pytest.mark.parametrize("seed", range(3))
def test_full_length_lists_equal_the_dense_evaluation(make_problem, seed, ap_mode):
    problem = make_problem(seed, ties=seed == 0)
    ranked = np.argsort(problem.distmat, axis=1, kind="stable")
    assert_same(
        evaluate_topk(ranked, *problem.labels(), ap_mode=ap_mode, chunk_size=6),
        evaluate_rank(problem.distmat, *problem.labels(), ap_mode=ap_mode),
    )


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_faiss_search_with_k_equal_to_the_gallery_equals_evaluate_rank(make_problem, metric):
    problem = make_problem(5, num_query=30, num_gallery=120)
    generator = torch.Generator().manual_seed(5)
    centres = torch.randn(10, 16, generator=generator)
    query = centres[problem.q_pids.clip(0)] + torch.randn(30, 16, generator=generator)
    gallery = centres[problem.g_pids.clip(0)] + torch.randn(120, 16, generator=generator)
    index = FaissGalleryIndex(16, metric)
    index.add(gallery)
    distances, ids = index.search(query, k=len(gallery))
    dense = np.empty((30, 120), dtype=np.float32)
    np.put_along_axis(dense, ids, distances, axis=1)  # the very distances faiss ranked by
    assert_same(evaluate_topk(ids, *problem.labels()), evaluate_rank(dense, *problem.labels()))


def test_truncated_lists_give_lower_bounds(make_problem):
    problem = make_problem(7, num_query=40, num_gallery=100)
    ranked = np.argsort(problem.distmat, axis=1, kind="stable")
    full = evaluate_rank(problem.distmat, *problem.labels())
    short = evaluate_topk(ranked[:, :10], *problem.labels())
    assert short.num_valid_queries == full.num_valid_queries
    assert short.mAP < full.mAP and short.mINP <= full.mINP
    assert (short.cmc <= full.cmc + 1e-12).all()
    np.testing.assert_allclose(short.cmc[:5], full.cmc[:5])  # 10 retrieved >= 5 kept


def test_truncated_scores_by_hand():
    # pid 1 has two matches; only the nearest is retrieved (then a stranger, then nothing)
    result = evaluate_topk([[0, 2, -1]], [1], [1, 1, 2], [0], [1, 2, 1])
    assert result.mAP == pytest.approx(0.5)  # (1/1) / 2 matches
    assert result.mINP == 0.0  # the hardest match was not retrieved
    assert result.cmc.tolist() == [1.0, 1.0, 1.0]


def test_out_of_range_indices_are_rejected():
    with pytest.raises(ValueError, match=r"indices must lie in \[-1, 2\]"):
        evaluate_topk([[0, 3]], [1], [1, 1, 2], [0], [1, 2, 1])


def test_top_k_ranked_applies_the_protocol_and_pads():
    distmat = np.array([[0.1, 0.2, 0.3, 0.4]])
    # gallery: same view (removed), junk (removed), stranger, match from another camera
    indices, matches = top_k_ranked(distmat, [1], [1, -1, 2, 1], [0], [0, 1, 1, 2], k=3)
    assert indices.tolist() == [[2, 3, -1]]
    assert matches.tolist() == [[False, True, False]]


@pytest.mark.parametrize("ties", [False, True])
def test_top_k_ranked_equals_a_full_stable_sort(make_problem, ties):
    problem = make_problem(11, num_query=30, num_gallery=80, ties=ties)
    indices, matches = top_k_ranked(problem.distmat, *problem.labels(), k=8, chunk_size=7)
    q_pids, g_pids, q_camids, g_camids = problem.labels()
    for q in range(30):
        order = np.argsort(problem.distmat[q], kind="stable")
        same_view = (g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q])
        kept = order[~same_view & (g_pids[order] != -1)][:8]
        np.testing.assert_array_equal(indices[q, : len(kept)], kept)
        np.testing.assert_array_equal(matches[q, : len(kept)], g_pids[kept] == q_pids[q])
