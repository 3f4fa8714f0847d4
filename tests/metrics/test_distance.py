"""Distance matrices: each metric against a direct formula, chunking, and bad input."""

import numpy as np
import pytest
import torch

from clip_reid.metrics import compute_distance_matrix


@pytest.fixture
def features():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(7, 5, generator=generator), torch.randn(11, 5, generator=generator)


def test_cosine_is_one_minus_cosine_similarity(features):
    query, gallery = features
    expected = 1 - torch.nn.functional.cosine_similarity(query[:, None], gallery[None], dim=2)
    torch.testing.assert_close(compute_distance_matrix(query, gallery, "cosine"), expected)


def test_dot_is_minus_the_dot_product(features):
    query, gallery = features
    torch.testing.assert_close(compute_distance_matrix(query, gallery, "dot"), -(query @ gallery.T))


def test_euclidean_is_squared(features):
    query, gallery = features
    expected = torch.cdist(query.double(), gallery.double()).pow(2).float()
    torch.testing.assert_close(
        compute_distance_matrix(query, gallery, "euclidean"), expected, atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("metric", ["cosine", "dot", "euclidean"])
def test_chunks_and_input_types_do_not_change_the_result(features, metric):
    query, gallery = features
    whole = compute_distance_matrix(query, gallery, metric)
    chunked = compute_distance_matrix(query.double().numpy(), gallery, metric, chunk_size=2)
    assert chunked.dtype == torch.float32 and chunked.shape == (7, 11)
    torch.testing.assert_close(chunked, whole)


def test_smaller_is_closer_for_every_metric(features):
    query, _ = features
    for metric in ("cosine", "dot", "euclidean"):
        distances = compute_distance_matrix(query, torch.cat([query, -query]), metric)
        assert (distances[:, :7].diagonal() < distances[:, 7:].diagonal()).all()


def test_mismatched_dimensions_are_rejected(features):
    query, gallery = features
    with pytest.raises(ValueError, match="dim 5 but gallery features 4"):
        compute_distance_matrix(query, gallery[:, :4])
    with pytest.raises(ValueError, match="metric must be one of"):
        compute_distance_matrix(query, gallery, "manhattan")
    with pytest.raises(ValueError, match="must be 2-d"):
        compute_distance_matrix(np.zeros(3), gallery)
