import os
import subprocess
import sys

import pytest
from builders import REPO_ROOT
from kedro.io.core import DatasetError
from kedro_datasets_experimental.vectorstore_base import (
    AbstractVectorStoreDataset,
    VectorStoreHandle,
)

from clip_reid.inference.gallery_filter import GalleryFilter
from clip_reid.inference.milvus_gallery import image_id
from clip_reid.io import MilvusGalleryDataset


def _record(n: int, fingerprint: str = "model-a") -> dict:
    vector = [0.0] * 6
    vector[n % 6] = 1.0 + n
    return {"properties": {"path": f"g/{n}.jpg", "pid": n // 2, "camid": n % 3,
                           "timestamp": float(n), "fingerprint": fingerprint},
            "vector": vector}


def test_the_handle_adds_searches_and_deletes_in_the_vector_store_shape(tmp_path):
    dataset = MilvusGalleryDataset(uri=str(tmp_path / "g.db"), collection="people")
    assert isinstance(dataset, AbstractVectorStoreDataset)
    with dataset.load() as store:
        assert isinstance(store, VectorStoreHandle)
        store.gallery.prepare(6, 0, "model-a")
        ids = store.add([_record(n) for n in range(6)])
        assert ids == [str(image_id(f"g/{n}.jpg")) for n in range(6)]
        store.add([_record(0)])  # same image again: replaced, not duplicated
        assert store.describe() == {"collection": "people", "count": 6,
                                    "uri": str(tmp_path / "g.db"), "index_type": "FLAT"}
        [best, *_] = store.search(vector=_record(4)["vector"], top_k=3)
        assert best["id"] == ids[4] and best["properties"]["path"] == "g/4.jpg"
        assert best["distance"] == pytest.approx(0.0, abs=1e-6)
        hits = store.search(vector=_record(4)["vector"], top_k=6,
                            filters=GalleryFilter(camids=(0,)))
        assert {hit["properties"]["camid"] for hit in hits} == {0}
        store.delete(ids=ids[:2])
        store.delete(filters="pid in [2]")
        assert store.describe()["count"] == 2
        with pytest.raises(NotImplementedError, match="no server-side text encoder"):
            store.search(text="a red top")
        with pytest.raises(ValueError, match="One add\\(\\) holds one model's features"):
            store.add([_record(1), _record(2, "model-b")])
    with pytest.raises(DatasetError, match="Saving is not supported"):
        dataset.save([])


def test_credentials_become_the_token_and_are_never_described():
    dataset = MilvusGalleryDataset(uri="http://127.0.0.1:19530",
                                   credentials={"user": "root", "password": "s3cret"})
    assert "s3cret" not in repr(dataset) and "s3cret" not in str(dataset._describe())
    handle = dataset.load()
    assert handle.gallery._token == "root:s3cret" and "s3cret" not in repr(handle.gallery)


def test_loading_the_dataset_connects_nothing_and_imports_no_pymilvus(tmp_path):
    """A faiss run loads gallery_store too: it must not import the optional engine."""
    script = (
        "import sys\n"
        "from clip_reid.io import MilvusGalleryDataset\n"
        f"handle = MilvusGalleryDataset(uri={str(tmp_path / 'g.db')!r}).load()\n"
        "with handle:\n"
        "    pass\n"
        "assert 'pymilvus' not in sys.modules, 'pymilvus imported'\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=REPO_ROOT,
                   env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")})
    assert not (tmp_path / "g.db").exists()
