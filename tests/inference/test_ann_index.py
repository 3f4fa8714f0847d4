import numpy as np
import pytest
import torch

from clip_reid.inference import GalleryIndex
from clip_reid.inference.ann_index import (
    MIN_TRAIN_SIZE,
    AnnSettings,
    IvfPqIndex,
    _exact_scan,
    _rescored,
    cells_for,
    pq_subquantizers,
)
from clip_reid.metrics import FaissGalleryIndex

DIM = 32


def clustered(count: int, seed: int = 0, identities: int = 150) -> tuple[torch.Tensor, list[int]]:
    """Features scattered around identity centres, as a ReID model's are."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(identities, DIM, generator=torch.Generator().manual_seed(99))
    pids = torch.randint(0, identities, (count,), generator=generator)
    features = centres[pids] + 0.5 * torch.randn(count, DIM, generator=generator)
    return features, pids.tolist()


def gallery_of(count: int, index="ivf", metric: str = "cosine", seed: int = 0) -> GalleryIndex:
    features, pids = clustered(count, seed)
    gallery = GalleryIndex(DIM, metric, "model-a", index=index)
    gallery.add(features, [f"g/{seed}/{row}.jpg" for row in range(count)], pids)
    return gallery


def exact_of(gallery: GalleryIndex) -> GalleryIndex:
    return GalleryIndex.from_state(gallery.to_state(), index="exact")


def recall_at(found: list[list[str]], truth: list[list[str]]) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth,
                                                                         strict=True)]))


@pytest.mark.parametrize("metric", ["cosine", "dot", "euclidean"])
def test_ivf_finds_the_exact_neighbours_with_exact_distances(metric):
    gallery = gallery_of(3000, metric=metric)
    assert gallery.index_kind == "ivf"
    queries, _ = clustered(200, seed=1)
    approximate = gallery.search(queries, k=10)
    exact = exact_of(gallery).search(queries, k=10)
    assert recall_at(approximate["topk_paths"], exact["topk_paths"]) >= 0.97
    same = approximate["topk_paths"].apply(lambda p: p[0]) == exact["topk_paths"].apply(
        lambda p: p[0])
    assert same.mean() >= 0.97
    np.testing.assert_allclose(approximate["distance"][same], exact["distance"][same],
                               rtol=1e-4, atol=1e-4)


def test_auto_switches_above_the_size_and_keeps_incremental_add():
    settings = AnnSettings(kind="auto", approximate_above=2500)
    gallery = gallery_of(2400, index=settings)
    assert gallery.index_kind == "exact"
    more, pids = clustered(600, seed=2)
    gallery.add(more, [f"new/{row}.jpg" for row in range(600)], pids)
    assert gallery.index_kind == "ivf" and len(gallery) == 3000
    latest, latest_pids = clustered(5, seed=3)
    latest = latest + 3.0  # far from every identity, so each is its own nearest neighbour
    gallery.add(latest, [f"latest/{row}.jpg" for row in range(5)], latest_pids)
    found = gallery.search(latest, k=1)
    assert found["topk_paths"].tolist() == [[f"latest/{row}.jpg"] for row in range(5)]
    assert found["distance"].max() < 1e-5


def test_small_galleries_stay_exact_even_when_ivf_is_asked():
    gallery = gallery_of(MIN_TRAIN_SIZE - 1)
    assert gallery.index_kind == "exact"
    assert GalleryIndex(DIM, index="exact").index_kind == "exact"


def test_the_trained_index_is_saved_and_loaded_without_retraining(tmp_path, monkeypatch):
    gallery = gallery_of(3000)
    queries, _ = clustered(50, seed=4)
    before = gallery.search(queries, k=5)
    path = tmp_path / "gallery.pt"
    torch.save(gallery.to_state(), path)

    def no_training(*args, **kwargs):
        raise AssertionError("a saved IVF index must be reused, not retrained")

    monkeypatch.setattr(IvfPqIndex, "trained", no_training)
    loaded = GalleryIndex.from_state(torch.load(path, weights_only=True))
    assert loaded.index_kind == "ivf" and loaded.fingerprint == "model-a"
    after = loaded.search(queries, k=5)
    assert after["topk_paths"].tolist() == before["topk_paths"].tolist()
    np.testing.assert_allclose(np.stack(after["topk_distances"]),
                               np.stack(before["topk_distances"]), rtol=1e-6)


def test_growth_retrains_so_cells_stay_balanced():
    gallery = gallery_of(2000)
    first = gallery._index.approximate
    assert first.trained_size == 2000 and first.nlist == cells_for(2000)
    more, pids = clustered(6000, seed=5)
    gallery.add(more, [f"more/{row}.jpg" for row in range(6000)], pids)
    assert gallery._index.approximate.trained_size == 8000
    assert gallery._index.approximate.nlist == cells_for(8000) > first.nlist


def test_queries_with_too_few_candidates_fall_back_to_exact_search():
    features, _ = clustered(500)
    queries = features[:3] + 0.01
    found = np.full((3, 10), -1, dtype=np.int64)
    found[:, :2] = [[7, 8], [9, 10], [11, 12]]  # fewer than k candidates
    norms = features.norm(dim=1).numpy()
    distances, rows = _rescored(queries, found, features, "cosine", 5, norms)
    exact = FaissGalleryIndex(DIM, "cosine")
    exact.add(features)
    expected_distances, expected_rows = exact.search(queries, 5)
    assert rows.tolist() == expected_rows.tolist()
    np.testing.assert_allclose(distances, expected_distances, rtol=1e-5, atol=1e-6)
    scan_distances, scan_rows = _exact_scan(queries, features, "euclidean", 4, chunk=64)
    exact = FaissGalleryIndex(DIM, "euclidean")
    exact.add(features)
    np.testing.assert_array_equal(scan_rows, exact.search(queries, 4)[1])


def test_sizes_of_the_index():
    assert cells_for(1_000_000) == 1024 and cells_for(100_000) == 256
    assert cells_for(2000) * 39 <= 2000 and cells_for(10) == 1
    assert pq_subquantizers(1280) == 64 and pq_subquantizers(3072) == 64
    assert pq_subquantizers(DIM) == 32 and 1280 % pq_subquantizers(1280) == 0


@pytest.mark.parametrize("field, value", [("kind", "hnsw"), ("nprobe", 0), ("rerank", 2.5),
                                          ("approximate_above", True)])
def test_settings_are_checked(field, value):
    with pytest.raises(ValueError, match=field if field != "kind" else "index must be one of"):
        AnnSettings(**{field: value})
