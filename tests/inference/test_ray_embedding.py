"""The Ray Data embedding engine on a two-node loopback cluster: the local path's features, in
input order, the local path's error for an unreadable image, and no row lost or duplicated
when a model actor is killed mid-run."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import pytest
import torch
from builders import write_crop
from ray_cluster import joined_cluster

from clip_reid.engine_settings import EmbeddingEngineSettings
from clip_reid.inference import FeatureExtractor, GalleryIndex, InvalidImageError

ray = pytest.importorskip("ray")

# Two actors and the decoding tasks share the two one-CPU nodes.
SETTINGS = EmbeddingEngineSettings(engine="ray", actors=2, cpus_per_actor=0.5, decode_cpus=0.5)
MODEL_ACTOR = "_EmbedActor"


@pytest.fixture(scope="module")
def cluster():
    with joined_cluster() as address:
        yield address


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("crops")
    paths = [folder / f"{i:04d}.jpg" for i in range(48)]
    for i, path in enumerate(paths):
        write_crop(path, seed=i, size=(32 + i % 5, 64 + i % 7))  # odd sizes: resizing matters
    return [str(path) for path in paths]


def test_ray_features_equal_the_local_ones_in_input_order(cluster, crops, rn_checkpoint):
    from clip_reid.inference.ray_embedding import RayEmbedder

    local = FeatureExtractor(rn_checkpoint, batch_size=16)
    remote = RayEmbedder(rn_checkpoint, SETTINGS, batch_size=5)
    assert remote.fingerprint == local.fingerprint and remote.feature_dim == local.feature_dim
    shuffled = crops[::-1]
    expected = local(shuffled)
    built = GalleryIndex.build(remote, shuffled, list(range(len(crops))))
    assert built.paths == shuffled
    assert built.features.shape == expected.shape and built.features.dtype == torch.float32
    assert torch.allclose(built.features, expected, atol=1e-5, rtol=0)


def test_decoding_is_a_stage_of_its_own(cluster, crops, rn_checkpoint):
    from clip_reid.inference.ray_embedding import INFERENCE_READER, embedding_dataset

    dataset = embedding_dataset(ray.put(rn_checkpoint), rn_checkpoint, crops, [0] * len(crops),
                                SETTINGS, 8, INFERENCE_READER, False, "fp32").materialize()
    stats = dataset.stats()
    assert "MapBatches(_decode)" in stats and "MapBatches(_EmbedActor)" in stats
    assert "_decode)->MapBatches" not in stats  # not fused into the model actors


def test_an_unreadable_image_raises_the_local_error(cluster, crops, rn_checkpoint, tmp_path):
    from clip_reid.inference.ray_embedding import RayEmbedder

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    images = [*crops[:7], str(broken), *crops[7:12]]
    with pytest.raises(InvalidImageError) as local:
        FeatureExtractor(rn_checkpoint, batch_size=4)(images)
    with pytest.raises(InvalidImageError) as remote:
        RayEmbedder(rn_checkpoint, SETTINGS, batch_size=4)(images)
    assert _without_addresses(remote.value) == _without_addresses(local.value)
    assert "item 7" in str(remote.value)


def _without_addresses(error: Exception) -> str:
    """The message without object addresses (PIL names its in-memory file object)."""
    return re.sub(r"0x[0-9a-f]+", "0x...", str(error))


def _model_actors() -> dict[str, dict]:
    from ray._private import state  # the GCS actor table; the public state API needs a dashboard

    return {key: actor for key, actor in state.actors().items()
            if MODEL_ACTOR in actor["ActorClassName"]}


def test_a_killed_actor_is_retried_without_losing_or_duplicating_rows(cluster, crops,
                                                                      rn_checkpoint):
    from clip_reid.inference.ray_embedding import RayEmbedder

    images = crops * 8  # 384 rows in 96 batches: long enough to kill an actor mid-run
    before = set(_model_actors())
    result: dict[str, torch.Tensor] = {}
    run = threading.Thread(target=lambda: result.update(
        features=RayEmbedder(rn_checkpoint, SETTINGS, batch_size=4)(images)))
    run.start()
    victim = None
    deadline = time.monotonic() + 300
    while victim is None and time.monotonic() < deadline and run.is_alive():
        alive = [key for key, actor in _model_actors().items()
                 if key not in before and actor["State"] == "ALIVE"]
        victim = alive[0] if alive else None
        time.sleep(0.2)
    assert victim is not None and run.is_alive(), "no model actor was alive mid-run to kill"
    os.kill(_model_actors()[victim]["Pid"], signal.SIGKILL)
    run.join(timeout=600)
    assert not run.is_alive()
    assert _model_actors()[victim]["NumRestarts"] >= 1  # Ray restarted it and retried its work
    expected = FeatureExtractor(rn_checkpoint, batch_size=16)(images)
    assert result["features"].shape == expected.shape  # every row exactly once, in order
    assert torch.allclose(result["features"], expected, atol=1e-5, rtol=0)


def test_no_image_is_an_error(cluster, rn_checkpoint):
    from clip_reid.inference.ray_embedding import INFERENCE_READER, embed_on_ray

    with pytest.raises(ValueError, match="No images to embed"):
        embed_on_ray(rn_checkpoint, [], [], SETTINGS, 4, INFERENCE_READER, False, "fp32")
