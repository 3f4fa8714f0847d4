import base64
import copy
import shutil
from pathlib import Path

import pandas as pd
import pytest
from builders import base_parameters, tiny_reid_checkpoint
from kedro.io import DataCatalog, MemoryDataset, Version
from kedro.runner import SequentialRunner
from mlflow.exceptions import MlflowException

from clip_reid.inference import UNKNOWN_PID, FeatureExtractor, GalleryIndex, InvalidImageError
from clip_reid.inference.gallery_store import MilvusReference
from clip_reid.io import MilvusGalleryDataset, PreviousCheckpointDataset, TorchCheckpointDataset
from clip_reid.pipelines.inference import create_pipeline
from clip_reid.pipelines.inference.nodes import (
    embed_gallery,
    identify_queries,
    identify_queries_served,
    list_query_images,
    publish_for_serving,
)

SAVED_GALLERY = "clip_reid.inference.gallery_store.saved_gallery"


@pytest.fixture(scope="module")
def checkpoint(tiny_index):
    return tiny_reid_checkpoint(tiny_index)


@pytest.fixture
def demo_root(tiny_index) -> Path:
    return Path(tiny_index["path"].iloc[0]).parents[1]


@pytest.fixture
def params():
    return base_parameters("inference")["inference"]


@pytest.fixture
def embedded(monkeypatch) -> list[int]:
    """How many images each FeatureExtractor call embeds."""
    calls: list[int] = []
    original = FeatureExtractor.__call__

    def counting(self, images, camids=None):
        images = list(images)
        calls.append(len(images))
        return original(self, images, camids)

    monkeypatch.setattr(FeatureExtractor, "__call__", counting)
    return calls


def _settings(**changes) -> dict:
    """The inference block of conf/base with ``changes``."""
    return base_parameters("inference")["inference"] | changes


def _embed(checkpoint, index, previous=None) -> GalleryIndex:
    return embed_gallery(checkpoint, previous, index, _settings(), None)


def _run_inference(checkpoint, params, index, store: Path, save_version: str):
    """`kedro run --pipeline inference` with the real gallery datasets (versioned files, and a
    milvus-lite file used when params say store: milvus)."""
    gallery_file = str(store / "gallery_index.pt")
    demo_root = Path(index["path"].iloc[0]).parents[1]
    catalog = DataCatalog({
        "reid_model": MemoryDataset(checkpoint),
        "image_index": MemoryDataset(index),
        "dataset_root": MemoryDataset(str(demo_root)),
        "previous_gallery_index": PreviousCheckpointDataset(
            filepath=gallery_file, artifact=SAVED_GALLERY, version=Version(None, None)),
        "gallery_index": TorchCheckpointDataset(filepath=gallery_file, artifact=SAVED_GALLERY,
                                                version=Version(None, save_version)),
        "gallery_store": MilvusGalleryDataset(uri=str(store / "gallery_milvus.db")),
        "query_identities": MemoryDataset(),
    })
    catalog["params:inference"] = params
    catalog["params:inference.queries"] = params["queries"]
    SequentialRunner().run(create_pipeline(), catalog)
    return catalog.load("query_identities")


def test_every_query_is_identified_and_an_unchanged_gallery_is_not_embedded_again(
        checkpoint, params, tmp_path, tiny_index, embedded):
    queries = tiny_index[tiny_index["split"] == "query"]
    gallery = tiny_index[tiny_index["split"] == "gallery"]

    first = _run_inference(checkpoint, params, tiny_index, tmp_path, "2026-01-01T00.00.00.000Z")
    assert embedded == [len(gallery), len(queries)]
    assert first["name"].tolist() == sorted(Path(p).name for p in queries["path"])
    assert set(first.columns) == {"name", "predicted_pid", "known", "distance", "topk_pids",
                                  "topk_paths", "topk_camids", "topk_distances"}
    assert first["topk_pids"].map(len).eq(params["top_k"]).all()
    known = first[first["known"]]
    assert known["predicted_pid"].isin(gallery["pid"]).all()
    assert (first.loc[~first["known"], "predicted_pid"] == UNKNOWN_PID).all()
    assert (first["distance"] == first["topk_distances"].str[0]).all()

    embedded.clear()
    second = _run_inference(checkpoint, params, tiny_index, tmp_path, "2026-01-02T00.00.00.000Z")
    assert embedded == [len(queries)]  # the gallery came from the first run's version
    pd.testing.assert_frame_equal(first, second)
    assert len(list((tmp_path / "gallery_index.pt").iterdir())) == 2


def test_the_milvus_store_gives_the_faiss_answers_and_embeds_an_unchanged_gallery_once(
        checkpoint, params, tmp_path, tiny_index, embedded):
    queries = tiny_index[tiny_index["split"] == "query"]
    faiss_answers = _run_inference(checkpoint, params, tiny_index, tmp_path / "faiss",
                                   "2026-01-01T00.00.00.000Z")
    milvus = copy.deepcopy(params) | {"gallery": params["gallery"] | {"store": "milvus"}}
    embedded.clear()
    first = _run_inference(checkpoint, milvus, tiny_index, tmp_path / "milvus",
                           "2026-01-01T00.00.00.000Z")
    gallery_size = int((tiny_index["split"] == "gallery").sum())
    assert embedded == [gallery_size, len(queries)]
    assert first["topk_paths"].tolist() == faiss_answers["topk_paths"].tolist()
    assert first["predicted_pid"].tolist() == faiss_answers["predicted_pid"].tolist()
    differences = (first["topk_distances"].explode().astype(float)
                   - faiss_answers["topk_distances"].explode().astype(float)).abs()
    assert differences.max() < 1e-5

    embedded.clear()
    second = _run_inference(checkpoint, milvus, tiny_index, tmp_path / "milvus",
                            "2026-01-02T00.00.00.000Z")
    assert embedded == [len(queries)]  # every gallery image was in the collection already
    pd.testing.assert_frame_equal(first, second)
    reference = TorchCheckpointDataset(filepath=str(tmp_path / "milvus" / "gallery_index.pt"),
                                       artifact=SAVED_GALLERY, version=Version(None, None)).load()
    assert isinstance(reference, MilvusReference) and reference.size == gallery_size


def test_a_changed_model_re_embeds_the_gallery(checkpoint, tiny_index, embedded):
    state = _embed(checkpoint, tiny_index)
    other = tiny_reid_checkpoint(tiny_index, image_size=(64, 48))
    embedded.clear()
    _embed(other, tiny_index, previous=state)
    assert embedded == [len(state)]


def test_a_low_threshold_makes_every_query_unknown(checkpoint, demo_root, tiny_index):
    queries = list_query_images(None, str(demo_root))
    gallery = _embed(checkpoint, tiny_index)
    found = identify_queries(queries, checkpoint, gallery, _settings(threshold=0.0, top_k=3))
    assert (found["predicted_pid"] == UNKNOWN_PID).all() and not found["known"].any()
    assert found["topk_pids"].map(len).eq(3).all()  # still the nearest candidates
    everyone = identify_queries(queries, checkpoint, gallery, _settings(threshold=None, top_k=3))
    assert everyone["known"].all()


def test_a_gallery_csv_wins_over_the_image_index(demo_root, tmp_path, checkpoint, tiny_index):
    images = sorted((demo_root / "bounding_box_test").glob("*.jpg"))[:3]
    for image in images:
        shutil.copy(image, tmp_path / image.name)
    pd.DataFrame({"image": [i.name for i in images], "pid": [7, 7, 9], "camid": [0, 1, 1],
                  "split": "gallery"}).to_csv(tmp_path / "gallery.csv", index=False)
    labels = _settings()["gallery"] | {"name": "image_list", "root": str(tmp_path / "gallery.csv")}
    state = embed_gallery(checkpoint, None, tiny_index, _settings(gallery=labels), None)
    assert state.pids.tolist() == [7, 7, 9] and state.camids.tolist() == [0, 1, 1]
    query = pd.DataFrame({"image": [base64.b64encode(images[2].read_bytes()).decode()]})
    found = identify_queries(query, checkpoint, state, _settings(threshold=None, top_k=5))
    assert found.loc[0, "predicted_pid"] == 9 and found.loc[0, "name"] == "query 0"
    assert found.loc[0, "distance"] == pytest.approx(0, abs=1e-5)


def test_bad_queries_and_a_gallery_of_another_backbone_fail_clearly(checkpoint, tiny_index,
                                                                    demo_root):
    gallery = _embed(checkpoint, tiny_index)
    good = str(sorted((demo_root / "query").iterdir())[0])
    bad = pd.DataFrame({"image": [good, "bm90IGFuIGltYWdl"], "name": ["ok", "upload"]})
    with pytest.raises(InvalidImageError, match="1 of 2 query image.*upload"):
        identify_queries(bad, checkpoint, gallery, _settings())
    with pytest.raises(MlflowException, match="upload") as raised:
        identify_queries_served(bad, checkpoint, gallery, _settings())
    assert raised.value.get_http_status_code() == 400

    vit = tiny_reid_checkpoint(tiny_index, arch="tiny-vit")
    with pytest.raises(ValueError, match="The gallery was embedded by model"):
        identify_queries(bad.iloc[:1], vit, gallery, _settings())
    with pytest.raises(ValueError, match="gallery_index was embedded by model"):
        publish_for_serving(vit, gallery)


def test_the_published_model_names_its_fingerprint_and_is_built_once(checkpoint, demo_root,
                                                                     tiny_index):
    gallery = _embed(checkpoint, tiny_index)
    served_model, served_gallery = publish_for_serving(checkpoint, gallery)
    assert served_model.to_state()["fingerprint"] == gallery.fingerprint
    assert served_gallery is gallery
    query = list_query_images(None, str(demo_root)).iloc[:1]
    query["image"] = [base64.b64encode(Path(path).read_bytes()).decode() for path in query.image]
    built = []
    original = FeatureExtractor.__init__

    def counting(self, *args, **kwargs):
        built.append(1)
        original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FeatureExtractor, "__init__", counting)
        for _ in range(3):  # every request gets its own deep copy of the checkpoint
            identify_queries_served(query, copy.deepcopy(served_model), gallery, _settings())
    assert len(built) <= 1
