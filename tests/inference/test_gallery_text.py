import numpy as np
import pytest
import torch

from clip_reid.inference import UNKNOWN_PID, FeatureExtractor, GalleryIndex

FINAL, PROJ = 6, 4


def _gallery(projections: torch.Tensor, metric: str = "euclidean") -> GalleryIndex:
    """Gallery features concat(final, projection) whose final part would rank differently."""
    count = len(projections)
    finals = torch.randn(count, FINAL, generator=torch.Generator().manual_seed(3)) * 100
    gallery = GalleryIndex(FINAL + PROJ, metric, fingerprint="m")
    gallery.add(torch.cat([finals, projections], 1), [f"g{i}.jpg" for i in range(count)],
                pids=[10 + i for i in range(count)], camids=[0] * count)
    return gallery


def test_text_search_ranks_by_cosine_on_the_projection_columns():
    projections = torch.randn(7, PROJ, generator=torch.Generator().manual_seed(0))
    gallery = _gallery(projections * torch.arange(1, 8).unsqueeze(1))  # norms must not matter
    queries = torch.randn(3, PROJ, generator=torch.Generator().manual_seed(1))
    result = gallery.search_text(queries, k=4)
    assert list(result.columns) == list(gallery.search(torch.randn(1, FINAL + PROJ)).columns)
    unit = torch.nn.functional.normalize
    similarity = unit(queries, dim=1) @ unit(projections, dim=1).T
    expected = torch.argsort(-similarity, dim=1)[:, :4]
    assert result["topk_pids"].tolist() == (expected + 10).tolist()
    assert result["predicted_pid"].tolist() == (expected[:, 0] + 10).tolist()
    best = similarity.gather(1, expected).numpy()
    np.testing.assert_allclose(np.array(result["topk_distances"].tolist()), 1 - best, atol=1e-5)
    assert result["known"].all()
    assert result["topk_paths"][0][0] == f"g{int(expected[0, 0])}.jpg"


def test_text_search_sees_images_added_after_an_earlier_search():
    projections = torch.eye(PROJ)
    gallery = _gallery(projections[:2])
    target = torch.tensor([[0.0, 0.0, 0.0, 1.0]])
    assert gallery.search_text(target, k=1)["predicted_pid"].tolist() != [99]
    gallery.add(torch.cat([torch.zeros(1, FINAL), projections[3:]], 1), ["new.jpg"], pids=[99])
    assert gallery.search_text(target, k=1)["predicted_pid"].tolist() == [99]
    restored = GalleryIndex.from_state(gallery.to_state())
    assert restored.search_text(target, k=1)["predicted_pid"].tolist() == [99]


def test_text_threshold_marks_far_answers_unknown():
    gallery = _gallery(torch.eye(PROJ))
    result = gallery.search_text(torch.tensor([[1.0, 0, 0, 0], [1.0, 1.0, 1.0, 1.0]]), k=2,
                                 threshold=0.1)
    assert result["known"].tolist() == [True, False]
    assert result["predicted_pid"].tolist() == [10, UNKNOWN_PID]


def test_text_features_of_the_wrong_width_are_refused():
    gallery = _gallery(torch.eye(PROJ))
    with pytest.raises(ValueError, match="text features are 10-d .* encode_text"):
        gallery.search_text(torch.ones(1, FINAL + PROJ))
    with pytest.raises(ValueError, match="empty"):
        GalleryIndex(FINAL + PROJ).search_text(torch.ones(1, PROJ))


def test_real_model_text_query_finds_the_image_whose_projection_matches(rn_checkpoint):
    """End to end with a tiny model: a gallery image whose projection is set to a sentence's text
    feature is that sentence's top-1 answer."""
    extractor = FeatureExtractor(rn_checkpoint)
    images = [np.full((64, 32, 3), value, dtype=np.uint8) for value in (0, 90, 180)]
    features = extractor(images)
    text = extractor.encode_text(["a woman in a red top", "a man with a backpack"])
    features[1, -extractor.projection_dim:] = torch.from_numpy(text[0]) * 5
    features[2, -extractor.projection_dim:] = torch.from_numpy(text[1]) * 0.5
    gallery = GalleryIndex(extractor.feature_dim, "cosine", extractor.fingerprint)
    gallery.add(features, ["a.jpg", "b.jpg", "c.jpg"], pids=[1, 2, 3])
    assert gallery.search_text(text, k=3)["predicted_pid"].tolist() == [2, 3]
