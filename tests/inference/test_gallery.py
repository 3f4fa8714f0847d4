import json
import logging

import numpy as np
import pytest
import torch
from builders import write_crop

from clip_reid.inference import UNKNOWN_PID, FeatureExtractor, GalleryIndex

DIM = 8


class CountingExtractor:
    """Features = a seeded function of the path; records every path it is asked to embed."""

    feature_dim = DIM

    def __init__(self, fingerprint: str = "model-a") -> None:
        self.fingerprint = fingerprint
        self.embedded: list[str] = []

    def __call__(self, images, camids=None) -> torch.Tensor:
        self.embedded += list(images)
        return torch.stack([_feature(path) for path in images])


def _feature(path: str) -> torch.Tensor:
    generator = torch.Generator().manual_seed(sum(map(ord, path)) * 31 + len(path))
    return torch.randn(DIM, generator=generator)


def _names(*numbers: int) -> list[str]:
    return [f"g/{n:04d}.jpg" for n in numbers]


def test_build_reuses_old_features_and_embeds_only_new_images(caplog):
    extractor = CountingExtractor()
    first = GalleryIndex.build(extractor, _names(1, 2, 3), pids=[1, 2, 3], camids=[0, 1, 0])
    assert extractor.embedded == _names(1, 2, 3)
    extractor.embedded.clear()
    with caplog.at_level(logging.INFO, logger="clip_reid.inference.gallery"):
        second = GalleryIndex.build(extractor, _names(2, 3, 4, 5), pids=[2, 3, 4, 5],
                                    previous=first)
    assert extractor.embedded == _names(4, 5)
    assert "2 images reused, 2 embedded, 1 removed" in caplog.text
    assert second.paths == _names(2, 3, 4, 5) and len(second) == 4 and len(first) == 3
    expected = torch.stack([_feature(path) for path in _names(2, 3, 4, 5)])
    assert torch.equal(second.features, expected)
    extractor.embedded.clear()
    GalleryIndex.build(extractor, _names(2, 3), pids=[2, 3],
                       previous=GalleryIndex.from_state(second.to_state()))
    assert extractor.embedded == []


def test_another_model_fingerprint_re_embeds_everything(caplog):
    first = GalleryIndex.build(CountingExtractor("model-a"), _names(1, 2), pids=[1, 2])
    retrained = CountingExtractor("model-b")
    with caplog.at_level(logging.INFO, logger="clip_reid.inference.gallery"):
        rebuilt = GalleryIndex.build(retrained, _names(1, 2, 3), pids=[1, 2, 3], previous=first)
    assert retrained.embedded == _names(1, 2, 3)
    assert rebuilt.fingerprint == "model-b"
    assert "model changed" in caplog.text


def test_state_round_trips_through_a_weights_only_torch_file(tmp_path):
    gallery = GalleryIndex.build(CountingExtractor(), _names(1, 2, 3), pids=[7, 8, 9],
                                 camids=[0, 1, 2], metric="euclidean")
    path = tmp_path / "gallery.pt"
    torch.save(gallery.to_state(), path)
    restored = GalleryIndex.from_state(torch.load(path, weights_only=True))
    assert (restored.paths, restored.metric, restored.fingerprint) == (
        gallery.paths, "euclidean", "model-a")
    assert torch.equal(restored.features, gallery.features)
    queries = gallery.features[[2, 0]]
    assert restored.search(queries, k=2).equals(gallery.search(queries, k=2))
    with pytest.raises(ValueError, match=r"keys \['fingerprint'\] are missing"):
        GalleryIndex.from_state({k: v for k, v in gallery.to_state().items()
                                 if k != "fingerprint"})


def test_search_labels_and_threshold_gives_unknown():
    gallery = GalleryIndex.build(CountingExtractor(), _names(1, 2, 3), pids=[10, 20, 30])
    stranger = -gallery.features[:1]  # cosine distance 2 from its "match", far from all
    queries = torch.cat([gallery.features[[1]] * 3.0, stranger])
    open_world = gallery.search(queries, k=2, threshold=0.5)
    assert open_world["predicted_pid"].tolist() == [20, UNKNOWN_PID]
    assert open_world["known"].tolist() == [True, False]
    assert open_world["distance"][0] == pytest.approx(0.0, abs=1e-5)
    assert open_world["topk_pids"][0][0] == 20 and len(open_world["topk_pids"][0]) == 2
    assert open_world["topk_paths"][0][0] == _names(2)[0]
    closed_world = gallery.search(queries, k=10)
    assert closed_world["known"].all() and closed_world["predicted_pid"][1] != UNKNOWN_PID
    assert len(closed_world["topk_distances"][0]) == 3  # k capped at the gallery size
    records = json.loads(json.dumps(open_world.to_dict(orient="records")))  # REST-safe values
    assert records[1]["predicted_pid"] == UNKNOWN_PID
    assert records[0]["predicted_pid"] == 20 and records[0]["topk_paths"][0] == _names(2)[0]


def test_empty_gallery_and_dimension_mismatch_errors():
    with pytest.raises(ValueError, match="the gallery is empty: "):
        GalleryIndex(DIM).search(torch.randn(1, DIM))
    gallery = GalleryIndex.build(CountingExtractor(), _names(1), pids=[1])
    with pytest.raises(ValueError, match=r"query features are 16-d but the gallery holds 8-d.*"
                                         r"Rebuild the gallery"):
        gallery.search(torch.randn(2, 16))


def test_add_appends_and_rejects_known_or_misaligned_rows():
    gallery = GalleryIndex(DIM, fingerprint="model-a")
    gallery.add(torch.randn(2, DIM), _names(1, 2), pids=[1, 2])
    gallery.add(np.random.default_rng(0).standard_normal((1, DIM)), _names(3), pids=[3],
                camids=[4])
    assert len(gallery) == 3 and gallery.to_state()["camids"].tolist() == [-1, -1, 4]
    with pytest.raises(ValueError, match="already in the gallery"):
        gallery.add(torch.randn(1, DIM), _names(1), pids=[1])
    with pytest.raises(ValueError, match="2 paths, 1 pids"):
        gallery.add(torch.randn(2, DIM), _names(4, 5), pids=[4])
    with pytest.raises(ValueError, match="listed more than once"):
        GalleryIndex.build(CountingExtractor(), _names(1, 1), pids=[1, 1])


def test_build_with_a_real_extractor_on_image_files(tmp_path, rn_checkpoint):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i:04d}_c1.jpg")
        write_crop(paths[-1], seed=i)
    extractor = FeatureExtractor(rn_checkpoint)
    gallery = GalleryIndex.build(extractor, paths, pids=[0, 1, 2])
    assert gallery.fingerprint == extractor.fingerprint and gallery.dim == extractor.feature_dim
    result = gallery.search(extractor([paths[1]]), k=1)
    assert result["predicted_pid"].tolist() == [1]
