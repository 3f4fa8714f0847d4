"""The Market-1501 protocol on cases small enough to rank by hand."""

import numpy as np
import pytest
import torch
from metrics.rank_oracle import evaluate_rank_reference

from clip_reid.metrics import evaluate_rank
from clip_reid.metrics.protocol import JUNK_PID, excluded_from_ranking

EVALUATORS = [evaluate_rank, evaluate_rank_reference]


def one_query(distances, g_pids, g_camids, q_pid=1, q_camid=0, **kwargs):
    """Evaluate a single query (pid 1, camera 0 unless given) against a hand-made gallery."""
    return [
        evaluate(
            np.array([distances], dtype=np.float64), [q_pid], g_pids, [q_camid], g_camids,
            **kwargs,
        )
        for evaluate in EVALUATORS
    ]


def test_the_rule_removes_the_same_view_and_junk_and_broadcasts_over_chunks():
    g_pids, g_camids = np.array([1, 1, 2, JUNK_PID, 0]), np.array([0, 1, 0, 1, 0])
    assert excluded_from_ranking(1, 0, g_pids, g_camids).tolist() == [
        True, False, False, True, False]  # same view; other camera; other pid; junk; distractor
    q_pids, q_camids = np.array([[1], [2]]), np.array([[0], [0]])
    chunk = excluded_from_ranking(q_pids, q_camids, g_pids[None, :], g_camids[None, :])
    assert chunk.tolist() == [[True, False, False, True, False],
                              [False, False, True, True, False]]


def test_same_pid_same_camera_gallery_images_are_removed():
    # ranked: same view (removed), other person, true match from camera 1
    for result in one_query([0.1, 0.2, 0.3], g_pids=[1, 2, 1], g_camids=[0, 1, 1]):
        assert result.cmc.tolist() == [0.0, 1.0, 1.0]
        assert result.mAP == pytest.approx(0.5)
        assert result.mINP == pytest.approx(0.5)


def test_same_pid_other_camera_is_a_match():
    for result in one_query([0.1, 0.2], g_pids=[1, 2], g_camids=[1, 1]):
        assert result.cmc[0] == 1.0 and result.mAP == 1.0


def test_query_without_a_remaining_match_is_skipped_and_counted():
    distmat = np.array([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]])
    # query 0 (pid 1, cam 0) finds pid 1 in cam 1; query 1 (pid 3, cam 0) only itself in cam 0
    for evaluate in EVALUATORS:
        result = evaluate(distmat, [1, 3], [1, 3, 2], [0, 0], [1, 0, 1])
        assert result.num_valid_queries == 1
        assert result.num_skipped_queries == 1
        assert result.mAP == 1.0
        assert np.isnan(result.query_ap[1]) and result.query_ap[0] == 1.0


def test_distractors_are_ordinary_gallery_images():
    for result in one_query([0.1, 0.2], g_pids=[0, 1], g_camids=[0, 1]):
        assert result.cmc[0] == 0.0
        assert result.mAP == pytest.approx(0.5)


def test_junk_is_ignored_wherever_it_ranks():
    for result in one_query([0.1, 0.2, 0.3, 0.4], g_pids=[-1, 1, -1, 2], g_camids=[1, 1, 1, 1]):
        assert result.cmc.tolist() == [1.0] * 4  # 2 kept items; later ranks keep the hit
        assert result.mAP == 1.0 and result.mINP == 1.0


def test_ties_are_broken_by_gallery_index():
    match_first = one_query([0.5, 0.5], g_pids=[1, 2], g_camids=[1, 1])
    match_second = one_query([0.5, 0.5], g_pids=[2, 1], g_camids=[1, 1])
    for result in match_first:
        assert result.mAP == 1.0
    for result in match_second:
        assert result.mAP == pytest.approx(0.5)


def test_perfect_ranking_scores_one():
    g_pids = np.repeat(np.arange(1, 5), 3)
    g_camids = np.tile([1, 2, 3], 4)
    q_pids = np.arange(1, 5)
    distmat = (g_pids[None, :] != q_pids[:, None]).astype(np.float32) + 0.01 * np.arange(12)
    for evaluate in EVALUATORS:
        result = evaluate(distmat, q_pids, g_pids, np.zeros(4, int), g_camids)
        assert result.mAP == 1.0 and result.mINP == 1.0
        assert (result.cmc == 1.0).all() and len(result.cmc) == 12


def test_hand_computed_ap_and_inp_with_three_matches():
    # kept ranking: hit, miss, hit, miss, miss, hit (a junk image in between is skipped)
    g_pids = [1, 2, 1, -1, 3, 4, 1]
    distances = np.arange(7) / 10
    for result in one_query(distances, g_pids, g_camids=[1] * 7):
        assert result.mAP == pytest.approx((1 / 1 + 2 / 3 + 3 / 6) / 3)
        assert result.mINP == pytest.approx(3 / 6)
        assert result.cmc[:3].tolist() == [1.0, 1.0, 1.0]


def test_market_matlab_ap_is_the_trapezoid_of_compute_ap_m():
    # compute_AP.m walks ranks 1..6 with hits at 1, 3, 6 (junk skipped, precision starts at 1):
    # (1/3)(1 + 1)/2 + (1/3)(1/2 + 2/3)/2 + (1/3)(2/5 + 3/6)/2
    expected = (1 / 3) * (2 / 2 + (1 / 2 + 2 / 3) / 2 + (2 / 5 + 3 / 6) / 2)
    g_pids = [1, 2, 1, -1, 3, 4, 1]
    for result in one_query(np.arange(7) / 10, g_pids, [1] * 7, ap_mode="market_matlab"):
        assert result.mAP == pytest.approx(expected)
        assert result.mAP == pytest.approx(0.6777777777777778)


def test_torch_inputs_give_the_same_result():
    distmat = np.array([[0.3, 0.1, 0.2], [0.1, 0.2, 0.3]])
    labels = ([1, 2], [1, 2, 1], [0, 0], [1, 1, 2])
    from_numpy = evaluate_rank(distmat, *labels)
    from_torch = evaluate_rank(torch.tensor(distmat), *(torch.tensor(x) for x in labels))
    assert from_torch.mAP == from_numpy.mAP
    np.testing.assert_array_equal(from_torch.cmc, from_numpy.cmc)


def test_cmc_is_cut_at_max_rank_and_gallery_size():
    distmat = np.array([[0.2, 0.1, 0.3]])
    assert len(evaluate_rank(distmat, [1], [1, 2, 3], [0], [1, 1, 1], max_rank=2).cmc) == 2
    assert len(evaluate_rank(distmat, [1], [1, 2, 3], [0], [1, 1, 1], max_rank=50).cmc) == 3


@pytest.mark.parametrize(
    ("distmat", "labels", "message"),
    [
        (np.array([[0.1, np.nan]]), ([1], [1, 2], [0], [1, 1]), r"distmat\[0, 1\] is nan"),
        (np.array([[0.1, 0.2]]), ([1], [1, 2, 3], [0], [1, 1]), "g_pids has 3 entries"),
        (np.array([0.1, 0.2]), ([1], [1, 2], [0], [1, 1]), "must be 2-d"),
        (np.array([[0.1, 0.2]]), ([1], [2, 3], [0], [1, 1]), "No query has a true match"),
        (np.array([[0.1, 0.2]]), ([1.5], [1, 2], [0], [1, 1]), "integer labels"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_error(distmat, labels, message):
    with pytest.raises(ValueError, match=message):
        evaluate_rank(distmat, *labels)


def test_unknown_ap_mode_is_rejected():
    with pytest.raises(ValueError, match="ap_mode must be one of"):
        evaluate_rank(np.zeros((1, 1)), [1], [1], [0], [1], ap_mode="interpolated")
