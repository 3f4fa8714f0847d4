import numpy as np
import pytest
import torch

from clip_reid.metrics.text_retrieval import (
    chance_text_retrieval,
    evaluate_text_retrieval,
)


def test_ranking_ignores_cameras_and_scores_by_cosine():
    gallery = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [-1.0, 0.0]]) * 3
    gallery_pids = [5, 6, 5, 7]
    text = torch.tensor([[1.0, 0.1], [0.0, 2.0]])
    result = evaluate_text_retrieval(text, [5, 6], gallery, gallery_pids)
    # query 0: ranks g0 (5), g2 (5) first -> AP 1; query 1: g1 (6) first -> AP 1
    assert result.rank(1) == 1.0 and result.mAP == pytest.approx(1.0)
    swapped = evaluate_text_retrieval(text, [6, 5], gallery, gallery_pids)
    # query 0 (pid 6): g1 ranked 3rd of 4 -> AP 1/3; query 1 (pid 5): g2 2nd, g0 3rd
    assert swapped.rank(1) == 0.0
    assert swapped.mAP == pytest.approx((1 / 3 + (1 / 2 + 2 / 3) / 2) / 2)
    assert swapped.mINP == pytest.approx((1 / 3 + 2 / 3) / 2)


def test_same_camera_images_of_the_identity_still_count():
    """Image queries drop same-pid same-camera gallery items; text queries must not."""
    result = evaluate_text_retrieval(torch.tensor([[1.0, 0.0]]), [5],
                                     torch.tensor([[1.0, 0.0], [0.0, 1.0]]), [5, 6])
    assert result.num_valid_queries == 1 and result.rank(1) == 1.0


def test_identity_without_gallery_images_is_skipped():
    result = evaluate_text_retrieval(torch.eye(2), [5, 9], torch.eye(2), [5, 6])
    assert result.num_valid_queries == 1 and result.num_skipped_queries == 1


def test_chance_level_matches_the_expected_random_ranking():
    text_pids = np.repeat(np.arange(20), 2)
    gallery_pids = np.repeat(np.arange(20), 5)  # 5 of 100 images match each query
    chance = chance_text_retrieval(text_pids, gallery_pids, repeats=20)
    assert chance["rank1"] == pytest.approx(0.05, abs=0.02)
    expected_rank5 = 1 - np.prod([(95 - i) / (100 - i) for i in range(5)])
    assert chance["rank5"] == pytest.approx(expected_rank5, abs=0.04)
    assert 0.03 < chance["mAP"] < 0.12
    trained = evaluate_text_retrieval(torch.eye(20)[text_pids], text_pids,
                                      torch.eye(20)[gallery_pids], gallery_pids)
    assert trained.headline()["rank1"] == 1.0 > chance["rank10"]
