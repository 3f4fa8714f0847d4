"""Sparse k-reciprocal re-ranking against the dense step-by-step reference."""

import numpy as np
import pytest
import torch
from metrics.rerank_oracle import rerank_dense

from clip_reid.metrics import compute_distance_matrix, re_rank
from clip_reid.metrics.rerank import stable_smallest


def clustered_features(seed, num_query=15, num_gallery=45, num_ids=8, dim=16):
    """Images of a few identities (cluster centres plus noise), split into query and gallery."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, num_ids, (num_query + num_gallery,), generator=generator)
    centres = torch.randn(num_ids, dim, generator=generator)
    features = centres[ids] + 0.7 * torch.randn(len(ids), dim, generator=generator)
    return features[:num_query], features[num_query:]


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize(("k1", "k2"), [(20, 6), (7, 3), (5, 1)])
@pytest.mark.parametrize("seed", range(3))
def test_matches_the_dense_reference(seed, k1, k2, metric, normalize):
    query, gallery = clustered_features(seed)
    dense = rerank_dense(query, gallery, k1, k2, 0.3, metric, normalize=normalize)
    sparse = re_rank(query, gallery, k1, k2, 0.3, metric, chunk_size=9, normalize=normalize)
    assert sparse.shape == (15, 45) and sparse.dtype == torch.float32
    torch.testing.assert_close(sparse, dense, atol=1e-5, rtol=1e-5)


def test_matches_with_duplicated_images():
    query, gallery = clustered_features(4)
    gallery = torch.cat([gallery, gallery[:10], query[:3]])  # exact ties in every ranking
    torch.testing.assert_close(
        re_rank(query, gallery, chunk_size=16), rerank_dense(query, gallery), atol=1e-5, rtol=1e-5
    )


def test_identical_images_give_finite_distances():
    features = torch.ones(12, 4)
    reranked = re_rank(features[:4], features[4:], k1=5, k2=3)
    assert torch.isfinite(reranked).all()
    torch.testing.assert_close(reranked, rerank_dense(features[:4], features[4:], k1=5, k2=3))


@pytest.mark.parametrize("normalize", [True, False])
def test_lambda_one_gives_the_row_normalised_original_distance(normalize):
    query, gallery = clustered_features(1)
    everything = torch.cat([query, gallery])
    if normalize:
        everything = torch.nn.functional.normalize(everything, dim=1)
    original = compute_distance_matrix(everything, everything, "euclidean")
    expected = (original / original.max(dim=1, keepdim=True).values)[:15, 15:]
    torch.testing.assert_close(
        re_rank(query, gallery, lambda_value=1.0, normalize=normalize), expected
    )


def test_features_are_l2_normalised_first_by_default_as_the_official_evaluator():
    # official utils/metrics.py R1_mAP_eval.compute: FEAT_NORM 'yes' → F.normalize(feats), then
    # re_ranking(qf, gf, k1=50, k2=15, lambda_value=0.3) on squared euclidean distances
    query, gallery = clustered_features(3, num_query=20, num_gallery=60)
    scales = torch.linspace(0.2, 5.0, 80)[:, None]
    query, gallery = query * scales[:20], gallery * scales[20:]
    unit = torch.nn.functional.normalize(torch.cat([query, gallery]), dim=1)
    official = re_rank(unit[:20], unit[20:], 50, 15, 0.3, normalize=False)
    torch.testing.assert_close(re_rank(query, gallery, 50, 15, 0.3), official)
    torch.testing.assert_close(rerank_dense(query, gallery, 50, 15, 0.3), official,
                               atol=1e-5, rtol=1e-5)
    # on unit vectors squared euclidean is 2 (1 - cos): row-normalised, the same distance
    torch.testing.assert_close(re_rank(query, gallery, 50, 15, 0.3, "cosine"), official,
                               atol=1e-5, rtol=1e-5)
    raw = re_rank(query, gallery, 50, 15, 0.3, normalize=False)
    assert (raw - official).abs().max() > 0.05  # feature norms matter without normalising


def test_reranking_is_not_the_original_distance():
    query, gallery = clustered_features(2)
    reranked = re_rank(query, gallery, lambda_value=0.3)
    original = re_rank(query, gallery, lambda_value=1.0)
    assert (reranked - original).abs().max() > 0.05


def test_neighbour_selection_breaks_ties_by_index_across_the_cut():
    block = torch.tensor([[3.0, 1.0, 2.0, 2.0, 2.0, 0.5], [2.0, 2.0, 2.0, 2.0, 2.0, 2.0]])
    chosen = stable_smallest(block, block.max(dim=1).values, width=3)
    expected = np.argsort(block.numpy() / block.max(dim=1).values[:, None].numpy(), axis=1,
                          kind="stable")[:, :3]
    np.testing.assert_array_equal(chosen, expected)
    assert chosen.tolist() == [[5, 1, 2], [0, 1, 2]]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k1": 60}, "k1=60 needs more than k1 images"),
        ({"k1": 5, "k2": 7}, r"k2 must be in \[1, k1 \+ 1\]"),
        ({"lambda_value": 1.5}, r"lambda_value must be in \[0, 1\]"),
        ({"metric": "dot"}, "metric must be one of"),
    ],
)
def test_bad_parameters_are_rejected(kwargs, message):
    query, gallery = clustered_features(0)
    with pytest.raises(ValueError, match=message):
        re_rank(query, gallery, **kwargs)
