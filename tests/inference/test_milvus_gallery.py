"""The Milvus gallery on milvus-lite (a local file, the real engine): the same answers as faiss
exact search, filters, upserts, deletes, incremental embedding and its errors."""

from __future__ import annotations

import dataclasses
import logging
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from builders import tiny_reid_checkpoint
from local_servers import milvus_server

from clip_reid.data.market import build_image_index
from clip_reid.data.synthetic import SyntheticConfig, generate_synthetic_market
from clip_reid.inference import FeatureExtractor, GalleryIndex
from clip_reid.inference.gallery_filter import GalleryFilter
from clip_reid.inference.gallery_store import embed_into_milvus, open_gallery
from clip_reid.inference.listing import GallerySettings, gallery_images
from clip_reid.inference.milvus_gallery import (
    SECONDS_PER_DAY,
    GalleryStoreError,
    MilvusGallery,
    MilvusIndex,
    image_id,
)

K = 10


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> SimpleNamespace:
    """The demo's test split (default SyntheticConfig: 120 identities, 150 distractors; only 2
    training identities, which this test does not use) embedded by a tiny untrained model."""
    root = tmp_path_factory.mktemp("milvus") / "demo_market"
    generate_synthetic_market(root, SyntheticConfig(num_train_ids=2))
    index, _ = build_image_index(root)
    extractor = FeatureExtractor(tiny_reid_checkpoint(index))
    gallery = gallery_images(GallerySettings(), index)
    queries = index[index["split"] == "query"]
    return SimpleNamespace(
        extractor=extractor, gallery=gallery,
        features=extractor(gallery["path"].tolist(), gallery["camid"].tolist()),
        queries=extractor(queries["path"].tolist(), queries["camid"].tolist()),
        texts=torch.as_tensor(extractor.encode_text(["a woman in a red top",
                                                     "a man in dark trousers"])))


@pytest.fixture(scope="module")
def stored(demo, tmp_path_factory) -> MilvusGallery:
    store = MilvusGallery(str(tmp_path_factory.mktemp("store") / "gallery.db"), "demo")
    reference = embed_into_milvus(demo.extractor, demo.gallery, store, "cosine")
    assert reference.size == len(demo.gallery)
    yield store
    store.close()


def _faiss(demo, rows=slice(None)) -> GalleryIndex:
    part = demo.gallery.iloc[rows]
    index = GalleryIndex(demo.extractor.feature_dim, "cosine", demo.extractor.fingerprint,
                         "exact")
    index.add(demo.features[torch.as_tensor(np.arange(len(demo.gallery))[rows])],
              part["path"].tolist(), part["pid"].tolist(), part["camid"].tolist(),
              part["timestamp"].tolist())
    return index


def _assert_same(found: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert found["topk_paths"].tolist() == expected["topk_paths"].tolist()
    assert found["topk_pids"].tolist() == expected["topk_pids"].tolist()
    assert found["topk_camids"].tolist() == expected["topk_camids"].tolist()
    np.testing.assert_allclose(np.array(found["topk_distances"].tolist()),
                               np.array(expected["topk_distances"].tolist()), atol=1e-5)


def test_the_demo_gallery_answers_as_faiss_exact_for_every_query(demo, stored):
    faiss_gallery = _faiss(demo)
    assert len(stored) == len(demo.gallery) and stored.fingerprint == demo.extractor.fingerprint
    _assert_same(stored.search(demo.queries, K, threshold=0.1),
                 faiss_gallery.search(demo.queries, K, threshold=0.1))
    _assert_same(stored.search_text(demo.texts, K), faiss_gallery.search_text(demo.texts, K))


@pytest.mark.parametrize("where", [
    GalleryFilter(camids=(0, 2)),
    GalleryFilter(start=700 / 25, end=900 / 25),  # frames 700-900 of the demo's 25 frames/s
    GalleryFilter(camids=(1, 4, 5), start=800 / 25),
])
def test_a_filtered_search_is_faiss_exact_over_the_filtered_images(demo, stored, where):
    kept = where.mask(demo.gallery["camid"].to_numpy(), demo.gallery["timestamp"].to_numpy())
    assert 0 < kept.sum() < len(kept)
    subset = _faiss(demo, np.flatnonzero(kept))
    found = stored.search(demo.queries, K, where=where)
    _assert_same(found, subset.search(demo.queries, K))
    _assert_same(_faiss(demo).search(demo.queries, K, where=where), subset.search(demo.queries, K))
    _assert_same(stored.search_text(demo.texts, K, where=where),
                 subset.search_text(demo.texts, K))
    assert all(set(cams) <= set(where.camids or cams) for cams in found["topk_camids"])


def test_a_filter_nothing_matches_is_a_clear_error(demo, stored):
    with pytest.raises(ValueError, match=r"No gallery image .* matches the filter camid in \[77\]"):
        stored.search(demo.queries[:1], K, where=GalleryFilter(camids=(77,)))


class Embedder:
    """Features = a seeded function of the path; records what it embeds."""

    feature_dim, projection_dim = 8, 4

    def __init__(self, fingerprint: str = "model-a") -> None:
        self.fingerprint = fingerprint
        self.embedded: list[str] = []

    def __call__(self, images, camids=None) -> torch.Tensor:
        self.embedded += list(images)
        return torch.stack([torch.randn(8, generator=torch.Generator().manual_seed(
            sum(map(ord, path)))) for path in images])


def _listing(numbers) -> pd.DataFrame:
    return pd.DataFrame({"path": [f"g/{n:03d}.jpg" for n in numbers],
                         "pid": [n // 4 for n in numbers], "camid": [n % 3 for n in numbers],
                         "timestamp": [float(n) * SECONDS_PER_DAY for n in numbers]})


@pytest.fixture
def small(tmp_path) -> MilvusGallery:
    with MilvusGallery(str(tmp_path / "small.db"), "small") as store:
        yield store


def test_a_grown_folder_embeds_only_its_new_images(small):
    embedder = Embedder()
    embed_into_milvus(embedder, _listing(range(20)), small, "cosine")
    embedder.embedded.clear()
    reference = embed_into_milvus(embedder, _listing(range(26)), small, "cosine")
    assert embedder.embedded == [f"g/{n:03d}.jpg" for n in range(20, 26)]
    assert reference.size == len(small) == 26


def test_upserting_the_same_images_replaces_their_vectors(small):
    embed_into_milvus(Embedder(), _listing(range(12)), small, "cosine")
    replaced = torch.eye(8)[:3]
    rows = _listing(range(3))
    small.upsert(replaced, rows["path"].tolist(), [40, 41, 42], rows["camid"].tolist(),
                 rows["timestamp"].tolist(), "model-a")
    assert len(small) == 12
    found = small.search(replaced, k=1)
    assert found["topk_paths"].str[0].tolist() == rows["path"].tolist()
    assert found["predicted_pid"].tolist() == [40, 41, 42]
    assert found["distance"].abs().max() < 1e-6


def test_deletes_by_image_person_and_age_keep_exact_counts(small, caplog):
    embed_into_milvus(Embedder(), _listing(range(40)), small, "cosine")
    with caplog.at_level(logging.INFO, logger="clip_reid.inference.milvus_gallery"):
        assert small.delete_images(["g/000.jpg", "g/001.jpg", "g/999.jpg"]) == 2
    assert "40 -> 38 rows" in caplog.text
    assert small.delete_pids([2, 3]) == 8  # images 8-15
    assert len(small) == 30
    # timestamps are n days: retention of 10.5 days at day 30 keeps images 20-39
    assert small.delete_older_than(10.5, now=30 * SECONDS_PER_DAY) == 30 - 20
    assert sorted(small.rows()["path"]) == [f"g/{n:03d}.jpg" for n in range(20, 40)]


def test_a_collection_refuses_another_model_and_another_width(small, tmp_path):
    embed_into_milvus(Embedder(), _listing(range(4)), small, "cosine")
    where = rf"Milvus at {small.uri}, collection 'small'"
    with pytest.raises(ValueError, match=where + r" holds features of model model-a, not .*b"):
        embed_into_milvus(Embedder("model-b"), _listing(range(4)), small, "cosine")
    with pytest.raises(ValueError, match=where + r" holds 8-d vectors .* not 16-d"):
        small.prepare(16, 4, "model-a")
    reference = embed_into_milvus(Embedder(), _listing(range(4)), small, "cosine")
    with pytest.raises(ValueError, match=r"now holds model model-a, not the model model-b"):
        open_gallery(dataclasses.replace(reference, fingerprint="model-b"), small)


def test_a_server_in_another_process_holds_the_rows_and_answers_as_milvus_lite(small, tmp_path):
    """The cluster code path (an http uri; nothing to release on close): the same rows, searches
    and deletes as the milvus-lite file, and the rows outlive the connection that wrote them."""
    listing = _listing(range(30))
    queries = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    embed_into_milvus(Embedder(), listing, small, "cosine")
    with milvus_server(tmp_path / "server") as (uri, _):
        with MilvusGallery(uri, "remote") as remote:
            reference = embed_into_milvus(Embedder(), listing, remote, "cosine")
            assert reference.uri == uri and reference.size == 30
            _assert_same(remote.search(queries, 5), small.search(queries, 5))
            where = GalleryFilter(camids=(1,))
            _assert_same(remote.search(queries, 5, where=where),
                         small.search(queries, 5, where=where))
        with MilvusGallery(uri, "remote") as reopened:
            assert reopened.fingerprint == "model-a" and len(reopened) == 30
            assert reopened.delete_pids([0]) == 4
            assert sorted(reopened.rows()["path"]) == listing["path"].tolist()[4:]


def test_an_unreachable_uri_is_a_clear_error_without_a_grpc_traceback():
    store = MilvusGallery("http://127.0.0.1:1", "people", timeout=5)
    with pytest.raises(GalleryStoreError) as error:
        len(store)
    assert "Milvus at http://127.0.0.1:1, collection 'people'" in str(error.value)
    assert error.value.__cause__ is None and error.value.__suppress_context__


def test_bad_uris_and_unbuildable_indexes_are_refused(tmp_path):
    with pytest.raises(GalleryStoreError, match="neither a server address .* nor a milvus-lite"):
        MilvusGallery(str(tmp_path / "gallery.txt")).count()
    with MilvusGallery(str(tmp_path / "g.db"), index=MilvusIndex("IVF_PQ")) as store:
        with pytest.raises(ValueError, match="milvus-lite .* builds only"):
            store.prepare(8, 4, "model-a")
    with pytest.raises(ValueError, match="index_type must be one of"):
        MilvusIndex("ANNOY")


def test_image_ids_are_stable_and_fit_a_signed_int64():
    assert image_id("a/b.jpg") == image_id("a/b.jpg") != image_id("a/c.jpg")
    assert 0 <= image_id("x" * 500) < 2 ** 63
