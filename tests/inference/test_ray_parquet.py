"""Ray embedding written as Parquet and streamed into the gallery stores (``output: parquet``),
on a two-node loopback cluster: the faiss and Milvus galleries it builds answer as the local
path's, the driver reads a bounded number of rows at a time, the written files hold every row
once, a bad image is the local error, and each run's folder is its own and goes away."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import torch
from builders import base_parameters, tiny_reid_checkpoint, write_crop
from ray_cluster import joined_cluster

from clip_reid.engine_settings import EmbeddingEngineSettings
from clip_reid.inference import FeatureExtractor, InvalidImageError
from clip_reid.inference.gallery_store import embed_into_faiss, embed_into_milvus
from clip_reid.inference.milvus_gallery import MilvusGallery, image_id
from clip_reid.settings_base import SettingsError

ray = pytest.importorskip("ray")
ray_parquet = pytest.importorskip("clip_reid.inference.ray_parquet")

STREAM_ROWS = 5
SETTINGS = EmbeddingEngineSettings(engine="ray", actors=2, cpus_per_actor=0.5, decode_cpus=0.5,
                                   output="parquet", stream_rows=STREAM_ROWS)


@pytest.fixture(scope="module")
def cluster():
    with joined_cluster() as address:
        yield address


@pytest.fixture(scope="module")
def gallery(tmp_path_factory) -> pd.DataFrame:
    """23 crops (not a multiple of the chunk or batch size) with pids, cameras and times."""
    folder = tmp_path_factory.mktemp("crops")
    paths = [folder / f"{i:04d}.jpg" for i in range(23)]
    for i, path in enumerate(paths):
        write_crop(path, seed=i, size=(32 + i % 5, 64 + i % 7))
    return pd.DataFrame({"path": [str(path) for path in paths][::-1],
                         "pid": [i // 2 for i in range(23)], "camid": [i % 3 for i in range(23)],
                         "timestamp": [1_700_000_000.0 + i for i in range(23)]})


def _embedder(checkpoint, runs: Path) -> ray_parquet.ParquetRayEmbedder:
    return ray_parquet.ParquetRayEmbedder(
        checkpoint, dataclasses.replace(SETTINGS, parquet_dir=str(runs)), batch_size=4)


def _recording_chunks(embedder, monkeypatch) -> list[int]:
    """The row count of every chunk the driver reads back from the files."""
    sizes: list[int] = []
    stream = embedder.stream

    def recorded(images):
        for part, features in stream(images):
            assert len(part) == len(features)
            sizes.append(len(part))
            yield part, features

    monkeypatch.setattr(embedder, "stream", recorded)
    return sizes


def _left_over(runs: Path) -> list[Path]:
    return sorted(runs.iterdir()) if runs.exists() else []


def test_a_faiss_gallery_through_parquet_equals_the_local_one(cluster, gallery, rn_checkpoint,
                                                              tmp_path, monkeypatch):
    local = embed_into_faiss(FeatureExtractor(rn_checkpoint, batch_size=8), gallery, "cosine",
                             None)
    embedder = _embedder(rn_checkpoint, tmp_path / "runs")
    sizes = _recording_chunks(embedder, monkeypatch)
    built = embed_into_faiss(embedder, gallery, "cosine", None)
    assert built.paths == local.paths == gallery["path"].tolist()
    assert np.array_equal(built.pids, local.pids) and np.array_equal(built.camids, local.camids)
    np.testing.assert_array_equal(built.timestamps, local.timestamps)
    assert torch.allclose(built.features, local.features, atol=1e-5, rtol=0)
    queries = local.features[:6]
    found, expected = built.search(queries, k=5), local.search(queries, k=5)
    assert found["topk_paths"].tolist() == expected["topk_paths"].tolist()
    assert sum(sizes) == len(gallery) and max(sizes) <= STREAM_ROWS and len(sizes) >= 5
    assert _left_over(tmp_path / "runs") == []  # the run's folder is removed


def test_a_milvus_gallery_through_parquet_equals_the_local_one(cluster, gallery, rn_checkpoint,
                                                               tmp_path, monkeypatch):
    written: list[pa.Table] = []
    read_chunks = ray_parquet.read_chunks

    def reading(filesystem, path, rows):  # the files as any Parquet reader sees them
        written.append(pq.read_table(path, filesystem=filesystem))
        yield from read_chunks(filesystem, path, rows)

    monkeypatch.setattr(ray_parquet, "read_chunks", reading)
    with (MilvusGallery(str(tmp_path / "local.db"), "g") as local,
          MilvusGallery(str(tmp_path / "ray.db"), "g") as remote):
        embed_into_milvus(FeatureExtractor(rn_checkpoint, batch_size=8), gallery, local,
                          "cosine")
        upserts: list[int] = []
        upsert = remote.upsert
        monkeypatch.setattr(remote, "upsert", lambda features, *rest: (
            upserts.append(len(features)), upsert(features, *rest))[1])
        reference = embed_into_milvus(_embedder(rn_checkpoint, tmp_path / "runs"), gallery,
                                      remote, "cosine")
        assert reference.size == len(gallery)
        assert sum(upserts) == len(gallery) and max(upserts) <= STREAM_ROWS
        assert len(upserts) >= 5
        rows = ["id", "path", "pid", "camid", "timestamp"]
        assert remote.rows().sort_values("id")[rows].reset_index(drop=True).equals(
            local.rows().sort_values("id")[rows].reset_index(drop=True))
        vectors = {side: {row["id"]: row["vector"] for row in store._query("", ["id", "vector"])}
                   for side, store in (("local", local), ("ray", remote))}
        assert vectors["ray"].keys() == vectors["local"].keys()
        np.testing.assert_allclose([vectors["ray"][key] for key in vectors["local"]],
                                   list(vectors["local"].values()), atol=1e-5)
        queries = FeatureExtractor(rn_checkpoint)(gallery["path"].tolist()[:6])
        found, expected = remote.search(queries, k=5), local.search(queries, k=5)
        assert found["topk_paths"].tolist() == expected["topk_paths"].tolist()
        np.testing.assert_allclose(found["topk_distances"].tolist(),
                                   expected["topk_distances"].tolist(), atol=1e-5)
    files = written[0]
    assert sorted(files["row"].to_pylist()) == list(range(len(gallery)))  # each row once
    by_row = files.to_pandas().set_index("row").sort_index()
    assert by_row["id"].tolist() == [image_id(path) for path in gallery["path"]]
    assert by_row["path"].tolist() == gallery["path"].tolist()
    assert by_row["pid"].tolist() == gallery["pid"].tolist()
    assert by_row["camid"].tolist() == gallery["camid"].tolist()
    assert by_row["timestamp"].tolist() == gallery["timestamp"].tolist()
    assert pa.types.is_fixed_size_list(files.schema.field("vector").type)
    assert _left_over(tmp_path / "runs") == []


def test_an_unreadable_image_is_the_local_error_and_reaches_no_store(cluster, gallery,
                                                                     rn_checkpoint, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    images = pd.concat([gallery.iloc[:7], pd.DataFrame({
        "path": [str(broken)], "pid": [99], "camid": [0], "timestamp": [0.0]}),
        gallery.iloc[7:12]], ignore_index=True)
    with (MilvusGallery(str(tmp_path / "local.db"), "g") as local,
          MilvusGallery(str(tmp_path / "ray.db"), "g") as remote):
        with pytest.raises(InvalidImageError) as expected:
            embed_into_milvus(FeatureExtractor(rn_checkpoint, batch_size=4), images, local,
                              "cosine")
        with pytest.raises(InvalidImageError) as found:
            embed_into_milvus(_embedder(rn_checkpoint, tmp_path / "runs"), images, remote,
                              "cosine")
        assert _without_addresses(found.value) == _without_addresses(expected.value)
        assert "item 7" in str(found.value)
        assert remote.count() == 0  # checked over the files before any row was upserted
    assert _left_over(tmp_path / "runs") == []  # removed when the run fails too


def test_a_killed_actor_loses_or_repeats_no_written_row(cluster, gallery, rn_checkpoint,
                                                        tmp_path):
    from ray._private import state  # the GCS actor table; the public state API needs a dashboard

    def model_actors() -> dict[str, dict]:
        return {key: actor for key, actor in state.actors().items()
                if "_EmbedActor" in actor["ActorClassName"]}

    images = pd.concat([gallery] * 16, ignore_index=True)  # 368 rows in 92 batches
    before = set(model_actors())
    chunks: list[tuple[pd.DataFrame, torch.Tensor]] = []
    run = threading.Thread(target=lambda: chunks.extend(
        _embedder(rn_checkpoint, tmp_path / "runs").stream(images)))
    run.start()
    victim = None
    deadline = time.monotonic() + 300
    while victim is None and time.monotonic() < deadline and run.is_alive():
        alive = [key for key, actor in model_actors().items()
                 if key not in before and actor["State"] == "ALIVE"]
        victim = alive[0] if alive else None
        time.sleep(0.2)
    assert victim is not None and run.is_alive(), "no model actor was alive mid-run to kill"
    os.kill(model_actors()[victim]["Pid"], signal.SIGKILL)
    run.join(timeout=600)
    assert not run.is_alive()
    assert model_actors()[victim]["NumRestarts"] >= 1  # Ray restarted it and retried its work
    rows = np.concatenate([part["row"].to_numpy() for part, _ in chunks])
    assert sorted(rows) == list(range(len(images)))  # the verified files: every row once
    features = torch.cat([chunk for _, chunk in chunks])[torch.from_numpy(np.argsort(rows))]
    expected = FeatureExtractor(rn_checkpoint, batch_size=16)(images["path"].tolist())
    assert torch.allclose(features, expected, atol=1e-5, rtol=0)
    assert _left_over(tmp_path / "runs") == []


def _without_addresses(error: Exception) -> str:
    """The message without object addresses (PIL names its in-memory file object)."""
    return re.sub(r"0x[0-9a-f]+", "0x...", str(error))


# --- the checks over written files, on files written here (no cluster) ----------------------

def _write(folder: Path, rows: list[int], errors: dict[int, str] | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    errors = errors or {}
    for number, start in enumerate(range(0, len(rows), 3)):
        part = rows[start:start + 3]
        pq.write_table(pa.table({"row": pa.array(part, pa.int64()),
                                 "error": [errors.get(row, "") for row in part]}),
                       folder / f"part-{number}.parquet")


def _verify(folder: Path, count: int) -> None:
    ray_parquet.verify_written(pafs.LocalFileSystem(), str(folder), count,
                               ray_parquet.INFERENCE_READER, rows=2)


@pytest.mark.parametrize(("rows", "message"), [
    ([0, 1, 2, 3, 4, 4], r"wrote 6 rows .* for 6 images \(5 distinct\)"),  # duplicated, lost
    ([0, 1, 2, 3, 4], r"wrote 5 rows .* for 6 images \(5 distinct\)"),  # lost
    ([0, 1, 2, 3, 4, 5, 5], r"wrote 7 rows .* for 6 images \(6 distinct\)"),  # duplicated
    ([0, 1, 2, 3, 4, 9], r"rows outside 0\.\.5"),
])
def test_written_files_with_rows_lost_or_repeated_are_refused(tmp_path, rows, message):
    _write(tmp_path / "run", rows)
    with pytest.raises(RuntimeError, match=message):
        _verify(tmp_path / "run", 6)


def test_the_first_bad_image_in_input_order_is_reported_with_the_count(tmp_path, caplog):
    _write(tmp_path / "run", [5, 4, 3, 2, 1, 0], {4: "item 4: broken", 2: "item 2: broken"})
    with pytest.raises(InvalidImageError, match="^item 2: broken$"):
        _verify(tmp_path / "run", 6)
    assert "2 of 6 images could not be read." in caplog.text
    _write(tmp_path / "good", list(range(6)))
    _verify(tmp_path / "good", 6)  # complete and readable: no error


def test_reading_back_decodes_one_file_at_a_time_however_slow_the_store(tmp_path):
    """A slow consumer (the store's upsert) must not let the reader decode the files ahead: the
    driver holds one chunk's worth of Arrow memory, not the gallery's."""
    files, rows, width = 10, 500, 640
    folder = tmp_path / "run"
    folder.mkdir()
    for number in range(files):
        vectors = np.full((rows, width), number, dtype=np.float32)
        pq.write_table(pa.table({
            "row": np.arange(number * rows, (number + 1) * rows), "id": np.zeros(rows, np.int64),
            "path": ["p"] * rows, "pid": np.zeros(rows, np.int64),
            "camid": np.zeros(rows, np.int64), "timestamp": np.zeros(rows),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), width)}),
            folder / f"part-{number}.parquet")
    one_file = rows * width * 4  # the vectors; decoding a file takes about 2.6 times that
    held, seen = [], 0
    for frame, features in ray_parquet.read_chunks(pafs.LocalFileSystem(), str(folder), rows):
        time.sleep(0.2)  # a store taking its time
        held.append(pa.total_allocated_bytes())
        seen += len(frame)
        assert features.shape == (len(frame), width)
    assert seen == files * rows
    assert max(held) < 4 * one_file, [f"{size / 2**20:.1f} MB" for size in held]


def test_each_run_writes_a_folder_of_its_own_and_removes_only_it(tmp_path):
    (tmp_path / "other-run").mkdir()
    with ray_parquet.run_folder(str(tmp_path)) as (filesystem, first), \
            ray_parquet.run_folder(str(tmp_path)) as (_, second):
        assert first != second and Path(first).parent == Path(second).parent == tmp_path
        _write(Path(first), [0, 1])
        assert filesystem.get_file_info(first).type == pafs.FileType.Directory
    assert sorted(path.name for path in tmp_path.iterdir()) == ["other-run"]


def test_parquet_output_needs_the_ray_engine_and_evaluation_keeps_memory(rn_checkpoint):
    with pytest.raises(SettingsError, match="output: parquet is written by Ray workers"):
        EmbeddingEngineSettings.from_params({"output": "parquet"}, "inference.embedding")
    from clip_reid.inference.ray_embedding import embed_splits_on_ray

    with pytest.raises(SettingsError, match="evaluation.embedding.output must be memory"):
        embed_splits_on_ray(rn_checkpoint, pd.DataFrame(), ("query",), SETTINGS, 4, False,
                            "fp32")


def test_the_node_embeds_with_a_streaming_embedder_only_for_parquet(rn_checkpoint):
    from clip_reid.inference.embedders import gallery_embedder
    from clip_reid.inference.gallery_store import StreamingEmbedder

    streaming = gallery_embedder(rn_checkpoint, 4, SETTINGS)
    assert isinstance(streaming, ray_parquet.ParquetRayEmbedder)
    assert isinstance(streaming, StreamingEmbedder)
    in_memory = gallery_embedder(rn_checkpoint, 4, dataclasses.replace(SETTINGS, output="memory"))
    assert not isinstance(in_memory, StreamingEmbedder)


def test_the_inference_node_fills_both_stores_through_parquet(cluster, tiny_index, tmp_path):
    """``embed_gallery`` with ``output: parquet``: the galleries of the local engine."""
    from clip_reid.io.milvus_dataset import MilvusGalleryDataset
    from clip_reid.pipelines.inference.nodes import embed_gallery

    checkpoint = tiny_reid_checkpoint(tiny_index)
    params = base_parameters("inference")["inference"]
    on_ray = params | {"embedding": params["embedding"] | {
        "engine": "ray", "output": "parquet", "parquet_dir": str(tmp_path / "runs"),
        "stream_rows": 7, "cpus_per_actor": 0.5, "decode_cpus": 0.5}}
    local, remote = (embed_gallery(checkpoint, None, tiny_index, block, None)
                     for block in (params, on_ray))
    assert remote.paths == local.paths and np.array_equal(remote.pids, local.pids)
    assert torch.allclose(remote.features, local.features, atol=1e-5, rtol=0)
    milvus = {"gallery": params["gallery"] | {"store": "milvus"}}
    stores = [MilvusGalleryDataset(uri=str(tmp_path / name)).load() for name in ("l.db", "r.db")]
    references = [embed_gallery(checkpoint, None, tiny_index, block | milvus, store)
                  for block, store in zip((params, on_ray), stores, strict=True)]
    assert references[1].size == references[0].size == len(local)
    assert references[1].fingerprint == references[0].fingerprint
    with stores[0] as first, stores[1] as second:
        found = second.gallery.search(local.features[:4], k=3)
        expected = first.gallery.search(local.features[:4], k=3)
        assert found["topk_paths"].tolist() == expected["topk_paths"].tolist()
    assert _left_over(tmp_path / "runs") == []
