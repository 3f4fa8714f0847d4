"""faiss gallery index: exact results, incremental adds, ids, and open-set labels."""

import numpy as np
import pytest
import torch

from clip_reid.metrics import (
    UNKNOWN_PID,
    FaissGalleryIndex,
    compute_distance_matrix,
    label_or_unknown,
    unknown_threshold,
)


@pytest.fixture
def features():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(12, 8, generator=generator), torch.randn(40, 8, generator=generator)


@pytest.mark.parametrize("metric", ["cosine", "dot", "euclidean"])
def test_search_returns_the_dense_ranking_and_distances(features, metric):
    query, gallery = features
    index = FaissGalleryIndex(8, metric)
    index.add(gallery)
    distances, ids = index.search(query, k=40, chunk_size=5)
    dense = compute_distance_matrix(query, gallery, metric).numpy()
    np.testing.assert_array_equal(ids, np.argsort(dense, axis=1, kind="stable"))
    np.testing.assert_allclose(distances, np.take_along_axis(dense, ids, axis=1), atol=1e-5)


def test_incremental_adds_equal_one_add_and_keep_old_vectors(features):
    query, gallery = features
    once = FaissGalleryIndex(8)
    once.add(gallery)
    twice = FaissGalleryIndex(8)
    twice.add(gallery[:25])
    before = twice.search(query, k=5)
    twice.add(gallery[25:])
    assert len(twice) == 40 and twice.ids.tolist() == list(range(40))
    for got, expected in zip(twice.search(query, k=10), once.search(query, k=10), strict=True):
        np.testing.assert_array_equal(got, expected)
    # the old part of the gallery still answers exactly as before the add
    old_only = twice.search(query, k=40)[1]
    first_old = np.array([row[row < 25][:5] for row in old_only])
    np.testing.assert_array_equal(first_old, before[1])


def test_custom_ids_are_returned_and_must_be_unique(features):
    query, gallery = features
    index = FaissGalleryIndex(8, "euclidean")
    index.add(gallery[:2], ids=[1000, 7])
    _, ids = index.search(gallery[1:2], k=1)
    assert ids.tolist() == [[7]]
    with pytest.raises(ValueError, match=r"ids \[7\] are already in the index"):
        index.add(gallery[2:3], ids=[7])
    with pytest.raises(ValueError, match=r"ids \[3\] are already in the index or repeated"):
        index.add(gallery[2:4], ids=[3, 3])


def test_k_is_capped_at_the_gallery_size(features):
    query, gallery = features
    index = FaissGalleryIndex(8)
    index.add(gallery[:3])
    distances, ids = index.search(query, k=10)
    assert distances.shape == ids.shape == (12, 3) and (ids >= 0).all()


def test_bad_use_is_rejected(features):
    query, _ = features
    index = FaissGalleryIndex(8)
    with pytest.raises(ValueError, match="index is empty"):
        index.search(query, k=1)
    with pytest.raises(ValueError, match="dim 4 but the index was built for dim 8"):
        index.add(query[:, :4])
    with pytest.raises(ValueError, match="metric must be one of"):
        FaissGalleryIndex(8, "hamming")


def test_unknown_threshold_and_labels():
    distances = np.array([0.1, 0.5, 0.9])
    assert unknown_threshold(distances, 0.5).tolist() == [False, False, True]
    labels = label_or_unknown(torch.tensor([4, 5, 6]), distances, threshold=0.4)
    assert labels.tolist() == [4, UNKNOWN_PID, UNKNOWN_PID]
    with pytest.raises(ValueError, match="one label and one distance per query"):
        label_or_unknown([1, 2], distances, 0.4)
