"""The printed formats are a contract: logs and users compare them line by line."""

import numpy as np
import pytest

from clip_reid.metrics import RankResult, format_results, format_test_results


@pytest.fixture
def result():
    cmc = np.linspace(0.957, 1.0, 50)
    cmc[4], cmc[9] = 0.98349, 0.99
    return RankResult(
        cmc=cmc, mAP=0.898, mINP=0.6012, num_valid_queries=3368, num_skipped_queries=0,
        query_ap=np.full(3368, 0.898),
    )


def test_validation_block(result):
    assert format_results(result) == (
        "Validation Results\n"
        "mAP: 89.8%\n"
        "mINP: 60.1%\n"
        "CMC curve, Rank-1  :95.7%\n"
        "CMC curve, Rank-5  :98.3%\n"
        "CMC curve, Rank-10 :99.0%"
    )


def test_test_results_lines(result):
    assert format_test_results(result).splitlines() == [
        "Test Results - Rank-1: 95.70%",
        "Test Results - Rank-5: 98.35%",
        "Test Results - Rank-10: 99.00%",
        "Test Results - mAP: 89.80%",
        "Test Results - mINP: 60.12%",
    ]


def test_other_ranks_and_out_of_range(result):
    assert format_results(result, ranks=(20,)).splitlines()[-1].startswith("CMC curve, Rank-20 :")
    with pytest.raises(ValueError, match="rank 51 is outside the CMC curve"):
        format_test_results(result, ranks=(51,))
