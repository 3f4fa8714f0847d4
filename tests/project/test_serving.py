"""The model `kedro run --pipeline full` logs, served by the real `mlflow models serve` on loopback.

The model is logged exactly as kedro-mlflow's hook does at the end of `full` (same inference
pipeline, input name and log_model kwargs from the registry), on a tiny untrained checkpoint, so
the test takes seconds instead of a training run.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from builders import REPO_ROOT, base_parameters, tiny_reid_checkpoint
from kedro.io import DataCatalog
from kedro_mlflow.mlflow import KedroPipelineModel
from kedro_mlflow.pipeline.pipeline_ml import PipelineML
from local_servers import free_port
from mlflow.exceptions import MlflowException
from PIL import Image

from clip_reid.data.market import build_image_index
from clip_reid.data.synthetic import SyntheticConfig, generate_synthetic_market
from clip_reid.inference import GalleryIndex
from clip_reid.io import MilvusGalleryDataset, TorchCheckpointDataset
from clip_reid.modeling import ReidCheckpoint
from clip_reid.pipeline_registry import register_pipelines
from clip_reid.pipelines.inference.nodes import (
    embed_gallery,
    identify_queries,
    publish_for_serving,
)

SERVER_START_TIMEOUT = 120


def log_served_model(store: Path, checkpoint: ReidCheckpoint, gallery: GalleryIndex) -> str:
    """What the kedro-mlflow hook does after `full`: log the bound inference pipeline with
    the artifacts the catalog holds; returns the model URI."""
    full = register_pipelines()["full"]
    catalog = DataCatalog()
    artifacts = {"served_reid_model": (checkpoint, "clip_reid.modeling.ReidCheckpoint"),
                 "served_gallery_index": (gallery,
                                          "clip_reid.inference.gallery_store.saved_gallery")}
    for name, (data, artifact) in artifacts.items():
        catalog[name] = TorchCheckpointDataset(filepath=str(store / f"{name}.pt"),
                                               artifact=artifact)
        catalog.save(name, data)
    catalog["params:inference"] = base_parameters("inference")["inference"]
    model = KedroPipelineModel(pipeline=full.inference, catalog=catalog,
                               input_name=full.input_name, **full.kpm_kwargs)
    with mlflow.start_run() as run:
        mlflow.pyfunc.log_model(python_model=model,
                                artifacts=model.extract_pipeline_artifacts(store),
                                **full.log_model_kwargs)
    return f"runs:/{run.info.run_id}/{full.log_model_kwargs['name']}"


@pytest.fixture(scope="module")
def tracking(tmp_path_factory) -> str:
    """A temporary tracking database and artifact store (not ./mlruns)."""
    store = tmp_path_factory.mktemp("tracking")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id=mlflow.create_experiment(
        "serving", artifact_location=(store / "artifacts").as_uri()))
    yield uri
    mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("serving") / "demo"
    generate_synthetic_market(root, SyntheticConfig(seed=5, num_train_ids=6, num_test_ids=5,
                                                    num_distractors=2, num_junk=0))
    index, _ = build_image_index(root)
    checkpoint = tiny_reid_checkpoint(index)
    checkpoint, gallery = publish_for_serving(
        checkpoint, embed_gallery(checkpoint, None, index,
                                  base_parameters("inference")["inference"], None))
    queries = index[index["split"] == "query"]["path"].tolist()
    return {"root": root, "checkpoint": checkpoint, "gallery": gallery, "queries": queries,
            "gallery_pids": set(gallery.to_state()["pids"].tolist())}


@pytest.fixture(scope="module")
def model_uri(tracking, demo, tmp_path_factory) -> str:
    return log_served_model(tmp_path_factory.mktemp("artifacts"), demo["checkpoint"],
                            demo["gallery"])


@pytest.fixture(scope="module")
def server(tracking, model_uri, tmp_path_factory) -> str:
    with _served(tracking, model_uri, tmp_path_factory.mktemp("server")) as url:
        yield url


@contextmanager
def _served(tracking: str, model_uri: str, workdir: Path) -> Iterator[str]:
    """`mlflow models serve` in its own process group, from a folder without the source."""
    port = free_port()
    log = (workdir / "server.log").open("w")
    command = [str(Path(sys.executable).with_name("mlflow")), "models", "serve", "-m", model_uri,
               "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "MLFLOW_TRACKING_URI": tracking},
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while not _answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("mlflow models serve did not start:\n"
                            + (workdir / "server.log").read_text()[-3000:])
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _post(url: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(f"{url}/invocations", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _b64(path: str | Path) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode()


def _png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_a_model_serving_a_milvus_lite_gallery_applies_the_request_filters(
        tracking, demo, tmp_path_factory):
    """The same model over the demo gallery in a milvus-lite file: a filtered request gets
    what identify_queries gives over the faiss gallery with the same filter."""
    folder = tmp_path_factory.mktemp("milvus")
    store = MilvusGalleryDataset(uri=str(folder / "gallery.db")).load()
    index, _ = build_image_index(demo["root"])
    inference = base_parameters("inference")["inference"]
    milvus = inference | {"gallery": inference["gallery"] | {"store": "milvus"}}
    reference = embed_gallery(demo["checkpoint"], None, index, milvus, store)
    uri = log_served_model(folder / "artifacts", demo["checkpoint"], reference)
    record = {"image": _b64(demo["queries"][0]), "cameras": "0;1", "time_from": 0.0,
              "time_to": 40.0}
    served = base_parameters("inference")["inference"]
    expected = identify_queries(pd.DataFrame([record | {"image": demo["queries"][0]}]),
                                demo["checkpoint"], demo["gallery"], served)
    (folder / "server").mkdir()
    with _served(tracking, uri, folder / "server") as url:
        status, body = _post(url, {"dataframe_records": [record]})
    assert status == 200, body
    [answer] = body["predictions"]
    assert answer["topk_pids"] == list(expected.loc[0, "topk_pids"])
    assert answer["topk_distances"] == pytest.approx(expected.loc[0, "topk_distances"], abs=1e-5)
    assert set(answer["topk_camids"]) <= {0, 1}
    assert [Path(path).name for path in answer["topk_paths"]] == [
        Path(path).name for path in expected.loc[0, "topk_paths"]]


def test_one_image_and_a_batch_get_their_identities(server, demo):
    status, body = _post(server, {"dataframe_records": [{"image": _b64(demo["queries"][0])}]})
    assert status == 200, body
    [answer] = body["predictions"]
    served = base_parameters("inference")["inference"]  # the parameters the model was logged with
    expected = identify_queries(pd.DataFrame({"image": [demo["queries"][0]]}),
                                demo["checkpoint"], demo["gallery"], served)
    assert answer["name"] == "query 0"
    assert answer["predicted_pid"] == expected.loc[0, "predicted_pid"]
    assert answer["distance"] == pytest.approx(expected.loc[0, "distance"], abs=1e-5)
    assert answer["predicted_pid"] == "unknown" or answer["predicted_pid"] in demo["gallery_pids"]
    assert answer["known"] == bool(expected.loc[0, "known"])
    assert len(answer["topk_pids"]) == len(answer["topk_paths"]) == served["top_k"]

    batch = demo["queries"][:3]
    status, body = _post(server, {"dataframe_split": {
        "columns": ["image", "name"], "data": [[_b64(p), Path(p).name] for p in batch]}})
    assert status == 200, body
    assert [row["name"] for row in body["predictions"]] == [Path(p).name for p in batch]


@pytest.mark.parametrize("image, message", [
    (base64.b64encode(b"\xff\xd8\xff\xe0 cut short").decode(), "is not a readable image"),
    (_png(Image.new("RGB", (8, 8))), "too small"),
    (_png(Image.fromarray(np.zeros((64, 32), dtype=np.uint16))), "unsupported pixel mode"),
    ("not base64 at all!", "is not valid base64 (file paths are not accepted here)"),
])
def test_bad_images_get_http_400_with_the_reason_and_the_server_stays_up(server, demo, image,
                                                                         message):
    status, body = _post(server, {"dataframe_records": [{"image": image, "name": "upload.jpg"}]})
    assert status == 400
    assert message in body["message"] and "upload.jpg" in body["message"]
    status, _ = _post(server, {"dataframe_records": [{"image": _b64(demo["queries"][0])}]})
    assert status == 200


def test_text_queries_get_answers_of_the_same_shape_as_image_queries(server, demo):
    sentences = ["a woman in a red top", "a man with a backpack"]
    records = [{"text": sentences[0], "name": "red top"},
               {"image": _b64(demo["queries"][0]), "name": "photo"},
               {"text": sentences[1]}]
    status, body = _post(server, {"dataframe_records": records})
    assert status == 200, body
    text_answer, image_answer, last = body["predictions"]
    assert set(text_answer) == set(image_answer)
    assert [text_answer["name"], image_answer["name"], last["name"]] == [
        "red top", "photo", "query 2"]
    served = base_parameters("inference")["inference"]
    expected = identify_queries(pd.DataFrame({"text": sentences}), demo["checkpoint"],
                                demo["gallery"], served)
    for answer, row in zip([text_answer, last], expected.itertuples(), strict=True):
        assert answer["topk_pids"] == list(row.topk_pids)
        assert answer["distance"] == pytest.approx(row.distance, abs=1e-5)
        assert answer["known"] and answer["predicted_pid"] in demo["gallery_pids"]
    assert len(text_answer["topk_paths"]) == served["top_k"]
    image_only = identify_queries(pd.DataFrame({"image": [demo["queries"][0]]}),
                                  demo["checkpoint"], demo["gallery"], served)
    assert image_answer["topk_pids"] == list(image_only.loc[0, "topk_pids"])


@pytest.mark.parametrize("record, message", [
    ({"text": "", "name": "blank"}, "Text query 'blank' is empty"),
    ({"text": "   ", "name": "spaces"}, "Text query 'spaces' is empty"),
    ({"text": " ".join(["red"] * 80), "name": "long"},
     "Text query 'long' is 80 tokens long but the text encoder reads at most 75"),
    ({"text": "a man", "image": "aGVsbG8=", "name": "both"}, "both given for both"),
])
def test_bad_text_gets_http_400_with_the_reason(server, record, message):
    status, body = _post(server, {"dataframe_records": [record]})
    assert status == 400, body
    assert message in body["message"]


def test_non_string_text_gets_http_400(server):
    status, body = _post(server, {"dataframe_records": [{"text": 12345, "name": "number"}]})
    assert status == 400, body
    assert "text" in body["message"]


def test_the_server_does_not_read_its_own_files(server, demo):
    """A client sending a server-side path must not get that file's identity back."""
    status, body = _post(server, {"dataframe_records": [{"image": str(demo["queries"][0]),
                                                         "name": "probe"}]})
    assert status == 400
    assert "file paths are not accepted" in body["message"]


def test_a_request_without_images_gets_http_400(server):
    status, body = _post(server, {"dataframe_records": [{"name": "no image"}]})
    assert status == 400 and "image" in body["message"] and "text" in body["message"]


def test_the_model_loads_without_the_source_tree(model_uri, tracking, demo):
    """A fresh interpreter that cannot see src/ loads the model from its own copy of the code.
    Only the source folder is hidden, compared as paths: a virtual environment inside the clone
    (`<clone>/.venv`, where .gitignore expects it) stays visible."""
    script = f"""
import pathlib, sys
source = pathlib.Path({str((REPO_ROOT / "src").resolve())!r})
sys.path = [p for p in sys.path if not pathlib.Path(p or ".").resolve().is_relative_to(source)]
import mlflow, pandas as pd
mlflow.set_tracking_uri({tracking!r})
model = mlflow.pyfunc.load_model({model_uri!r})
import clip_reid
assert "/code/clip_reid/" in clip_reid.__file__, clip_reid.__file__
print(model.predict(pd.DataFrame({{"image": [{_b64(demo["queries"][1])!r}]}})).shape)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd="/", timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("(1, 8)")


@pytest.mark.parametrize("case, message", [
    ("empty_gallery", "the gallery is empty"),
    ("other_backbone", "The gallery was embedded by model"),
])
def test_an_empty_gallery_or_another_backbone_is_a_400_error(tracking, demo, tmp_path, case,
                                                             message):
    checkpoint, gallery = demo["checkpoint"], demo["gallery"]
    if case == "empty_gallery":
        gallery = GalleryIndex(gallery.dim, gallery.metric, gallery.fingerprint)
    else:  # publish_for_serving refuses this pair: log it by hand
        index, _ = build_image_index(demo["root"])
        vit = tiny_reid_checkpoint(index, arch="tiny-vit")
        checkpoint = vit.published()
    model = mlflow.pyfunc.load_model(log_served_model(tmp_path, checkpoint, gallery))
    with pytest.raises(MlflowException, match=message) as raised:
        model.predict(pd.DataFrame({"image": [_b64(demo["queries"][0])]}))
    assert raised.value.get_http_status_code() == 400


def test_full_logs_the_served_pipeline_after_training_and_gallery_embedding():
    """And a partial run (as --only-missing-outputs or --nodes make) does not fail the binding."""
    pipelines = register_pipelines()
    full = pipelines["full"]
    assert isinstance(full, PipelineML) and pipelines["__default__"] is full
    training = {node.name for node in full.nodes}
    stages = ("data_ingestion", "captions", "prompt_learning", "encoder_training", "evaluation")
    assert {n.name for stage in stages for n in pipelines[stage].nodes} < training
    assert {"inference.embed_gallery", "inference.publish_for_serving"} < training
    assert full.inference.outputs() == {"query_identities"}
    assert full.inference.inputs() - {"query_images"} - full.all_outputs() == {
        "params:inference"}
    code = Path(full.log_model_kwargs["code_paths"][0])
    assert (code / "pipelines" / "inference" / "nodes.py").is_file()
    assert not any("clip-reid" in pin for pin in full.log_model_kwargs["pip_requirements"])
    assert isinstance(full.filter(node_names=["evaluation.evaluate_features",
                                        "inference.publish_for_serving"]),
                      PipelineML)
    partial = full.filter(node_names=["evaluation.evaluate_features"])
    assert not isinstance(partial, PipelineML) and len(partial.nodes) == 1
