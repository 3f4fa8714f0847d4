"""`kedro run` with every engine on Ray (a two-node loopback cluster): stages 1 and 2 on 2 Ray
Train workers, query/gallery and gallery embedding on Ray Data. The run saves the model once, is one
MLflow run, and the local engine then gives the same predictions CSV and features (1e-5)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
import torch
from kedro_project import copy_project, kedro_command, kedro_env
from ray_cluster import loopback_cluster

from clip_reid.inference import FeatureExtractor
from clip_reid.modeling import ReidCheckpoint

pytest.importorskip("ray")

HALF_CPU = ("cpus_per_actor=0.5", "decode_cpus=0.5")  # two actors + decoding on 2 one-CPU nodes


@pytest.fixture(scope="module")
def address():
    with loopback_cluster() as head:
        yield head


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return copy_project(tmp_path_factory.mktemp("ray_project"))


def _run(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = kedro_env(project) | {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER":
                                os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"]}  # loopback
    result = subprocess.run(kedro_command("run", "--env", "e2e", *args), cwd=project, env=env,
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _versions(project: Path, relative: str) -> list[Path]:
    name = Path(relative).name
    return sorted((project / "data" / relative).glob(f"*/{name}"))


def _ray_params(address: str) -> str:
    blocks = [f"trainer.engine=ray,trainer.ray.address={address}"]
    for block in ("inference.embedding", "evaluation.embedding"):
        blocks.append(",".join([f"{block}.engine=ray", f"{block}.address={address}",
                                *(f"{block}.{value}" for value in HALF_CPU)]))
    return ",".join(blocks)


@pytest.fixture(scope="module")
def ray_run(project, address) -> subprocess.CompletedProcess:
    return _run(project, "--pipelines", "full", "--params", _ray_params(address))


def test_full_on_ray_saves_once_in_one_mlflow_run(project, ray_run):
    log = ray_run.stdout + ray_run.stderr
    assert "prompt_learning epoch 2 (Ray, 2 workers)" in log
    assert "encoder_training epoch 2 (Ray, 2 workers)" in log
    assert "Ray: disconnected." in log
    assert len(_versions(project, "06_models/reid_model.pt")) == 1
    with sqlite3.connect(project / "tracking.db") as db:
        runs = db.execute("SELECT status FROM runs").fetchall()
        metrics = {key for (key,) in db.execute("SELECT key FROM metrics")}
    assert runs == [("FINISHED",)]
    assert {"prompt_learning/loss", "encoder_training/loss_epoch", "encoder_training/lr",
            "evaluation/mAP"} <= metrics


def test_local_evaluation_gives_the_ray_run_predictions(project, ray_run):
    ray_predictions = _versions(project, "08_reporting/query_predictions.csv")
    ray_query, ray_gallery = (_versions(project, f"07_model_output/{name}_features.pt")
                              for name in ("query", "gallery"))
    _run(project, "--pipelines", "evaluation")  # the local engine, the same model
    predictions = _versions(project, "08_reporting/query_predictions.csv")
    assert len(predictions) == 2
    assert predictions[1].read_bytes() == ray_predictions[0].read_bytes()
    for name, on_ray in (("query", ray_query[0]), ("gallery", ray_gallery[0])):
        local = torch.load(_versions(project, f"07_model_output/{name}_features.pt")[1],
                           weights_only=True)
        remote = torch.load(on_ray, weights_only=True)
        assert remote["paths"] == local["paths"] and torch.equal(remote["pids"], local["pids"])
        assert torch.allclose(remote["features"], local["features"], atol=1e-5, rtol=0)


def test_the_ray_embedded_gallery_equals_local_features(project, ray_run):
    model = ReidCheckpoint.load(_versions(project, "06_models/reid_model.pt")[0])
    gallery = torch.load(_versions(project, "07_model_output/gallery_index.pt")[0],
                         weights_only=True)
    expected = FeatureExtractor(model)(gallery["paths"], gallery["camids"])
    assert torch.allclose(torch.as_tensor(gallery["features"]), expected, atol=1e-5, rtol=0)


def test_an_unreadable_image_fails_the_ray_run_as_locally_and_ray_is_left(project, address,
                                                                          ray_run):
    """Runs last: it damages one gallery image of the project."""
    gallery = torch.load(_versions(project, "07_model_output/gallery_features.pt")[0],
                         weights_only=True)
    damaged = Path(gallery["paths"][3])
    damaged.write_bytes(b"not an image")
    params = ",".join([f"evaluation.embedding.engine=ray,evaluation.embedding.address={address}",
                       *(f"evaluation.embedding.{value}" for value in HALF_CPU)])
    env = kedro_env(project) | {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    result = subprocess.run(kedro_command("run", "--env", "e2e", "--pipelines", "evaluation",
                                          "--params", params),
                            cwd=project, env=env, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=1500)
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Cannot read image" in log and damaged.name in log  # the local path's error
    assert "Ray: disconnected." in log  # the hook left the cluster although the run failed
