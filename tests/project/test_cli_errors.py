"""The errors a user meets first are a short message, not a traceback."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import click
import pandas as pd
import pytest
from click.testing import CliRunner
from kedro.io.core import DatasetError, VersionNotFoundError
from kedro.pipeline import Node, Pipeline
from kedro_project import copy_project, kedro, output

from clip_reid.data.image_index import DatasetLayoutError
from clip_reid.modeling.weights import WeightsError
from clip_reid.project.cli import _RunWithShortErrors, _verbose
from clip_reid.project.run_errors import explain, producers

STAGES = {"encoder_training": "reid_model", "evaluation": "evaluation_metrics"}


def _catalog_load_error(name: str, error: Exception, repr_path: str | None = None) -> DatasetError:
    """The chain DataCatalog.load raises: DatasetError(f"{name}: {dataset error}")."""
    dataset = (f"TorchCheckpointDataset(filepath=PurePosixPath('{repr_path}'))"
               if repr_path else "TorchCheckpointDataset()")
    if not isinstance(error, DatasetError):  # AbstractDataset's load wrapper
        wrapped = DatasetError(f"Failed while loading data from dataset {dataset}.\n{error}")
        wrapped.__cause__ = error
        error = wrapped
    outer = DatasetError(f"{name}: {error}")
    outer.__cause__ = error
    return outer


def _registry() -> dict[str, Pipeline]:
    def node(inputs, outputs, name):
        return Node(lambda *a: None, inputs, outputs, name=name)

    train = Pipeline([node("image_index", "reid_model", "train")])
    evaluate = Pipeline([node("reid_model", "evaluation_metrics", "evaluate")])
    return {"encoder_training": train, "evaluation": evaluate, "full": train + evaluate,
            "__default__": train + evaluate}


def test_producers_names_the_stage_not_full():
    assert producers(_registry()) == {"reid_model": "encoder_training",
                                      "evaluation_metrics": "evaluation"}


def test_missing_earlier_output_names_the_stage_and_the_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "data" / "06_models" / "reid_model.pt"
    error = _catalog_load_error(
        "reid_model", VersionNotFoundError(
            f"Did not find any versions for TorchCheckpointDataset(filepath=PurePosixPath("
            f"'{path}'), protocol='file')"))
    message = explain(error, producers(_registry()))
    assert message == (
        "`reid_model` does not exist yet (nothing at data/06_models/reid_model.pt); the "
        "`encoder_training` stage makes it.\nMake it with `kedro run --pipelines full`, or point "
        "`reid_model` at an existing file in conf/local/catalog.yml."
    )


def test_missing_unversioned_input_is_explained_the_same_way(tmp_path):
    missing = FileNotFoundError(2, "No such file or directory", str(tmp_path / "index.parquet"))
    message = explain(_catalog_load_error("image_index", missing), {"image_index": "ingest"})
    assert message.startswith(f"`image_index` does not exist yet (nothing at {tmp_path}")
    assert "the `ingest` stage makes it" in message


def test_requested_version_that_does_not_exist_lists_the_existing_ones(tmp_path):
    versions = tmp_path / "reid_model.pt"
    for version in ("2026-01-01T00.00.00.000Z", "2026-02-01T00.00.00.000Z"):
        (versions / version).mkdir(parents=True)
    wanted = "2025-12-31T00.00.00.000Z"
    missing = FileNotFoundError(2, "No such file", str(versions / wanted / "reid_model.pt"))
    message = explain(_catalog_load_error("reid_model", missing, str(versions)), {},
                      load_versions={"reid_model": wanted})
    assert f"`reid_model` has no version '{wanted}' in {versions}" in message
    assert "Available (newest first): 2026-02-01T00.00.00.000Z, 2026-01-01T00.00.00.000Z" in message


def test_own_errors_print_their_message_and_where():
    error = _catalog_load_error("clip_backbone", WeightsError("bad.pt is not a CLIP checkpoint"))
    assert explain(error, {}) == (
        "WeightsError in dataset `clip_backbone`: bad.pt is not a CLIP checkpoint")
    assert explain(DatasetLayoutError("no bounding_box_train/ in x"), {}) == (
        "DatasetLayoutError: no bounding_box_train/ in x")


def test_unknown_pipeline_is_kedros_message_alone():
    error = ValueError("Failed to find the pipeline named 'evaluatoin'. It needs to be generated "
                       "and returned by the 'register_pipelines' function. Did you mean one of "
                       "these instead?\n    evaluation")
    assert explain(error, {}) == str(error)


def test_other_errors_keep_their_traceback():
    assert explain(RuntimeError("CUDA out of memory"), {}) is None
    assert explain(_catalog_load_error("x", ValueError("bad parquet")), {}) is None
    # A failed save is not a missing input, even when the cause is a missing folder.
    save = DatasetError("reid_model: Failed while saving data to dataset X.")
    save.__cause__ = FileNotFoundError(2, "No such file", "/nowhere/reid_model.pt")
    assert explain(save, {}) is None


def _command(error: Exception) -> click.Command:
    def callback(**_):
        raise error

    return _RunWithShortErrors(name="run", callback=callback, params=[_verbose])


def test_short_message_and_exit_code_1_without_traceback():
    result = CliRunner().invoke(_command(DatasetLayoutError("no bounding_box_train/ in x")), [])
    assert result.exit_code == 1
    assert result.output == (
        "Error: DatasetLayoutError: no bounding_box_train/ in x (--verbose: traceback)\n")


def test_ctrl_c_outside_training_ends_the_mlflow_run_killed(tmp_path, mlflow_tracking):
    """Kedro's error hooks see no KeyboardInterrupt; without this the run would end FINISHED."""
    import mlflow

    experiment = mlflow.create_experiment("cli", artifact_location=(tmp_path / "a").as_uri())
    run = mlflow.start_run(experiment_id=experiment)
    result = CliRunner().invoke(_command(KeyboardInterrupt()), [])
    assert result.exit_code == 130
    assert result.output.startswith("Interrupted (Ctrl-C). Run the same command again")
    assert mlflow.active_run() is None
    assert mlflow.get_run(run.info.run_id).info.status == "KILLED"


def test_verbose_and_unexpected_errors_keep_the_exception():
    own = DatasetLayoutError("no bounding_box_train/ in x")
    assert CliRunner().invoke(_command(own), ["--verbose"]).exception is own
    unexpected = RuntimeError("boom")
    assert CliRunner().invoke(_command(unexpected), []).exception is unexpected


def test_traceback_is_logged_at_debug(caplog):
    with caplog.at_level(logging.DEBUG, logger="clip_reid.project.cli"):
        CliRunner().invoke(_command(DatasetLayoutError("no layout")), [])
    assert [r.exc_info[0] for r in caplog.records] == [DatasetLayoutError]


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory) -> Path:
    """The project as cloned: configuration, no data, no trained model."""
    return copy_project(tmp_path_factory.mktemp("fresh"))


def _error_lines(log: str) -> list[str]:
    lines = log.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Error: "))
    return lines[start:]


def test_evaluation_before_training_says_what_to_run(fresh_clone):
    """Stopped when the run starts: no MLflow run is opened (and left FAILED), no node runs, and
    Kedro's "No nodes ran. Repeat the previous command" advice, wrong here, is not given."""
    result = kedro(fresh_clone, "run", "--pipelines", "evaluation", "--env", "e2e")
    log = output(result)
    assert result.returncode == 1, log[-3000:]
    assert "Traceback" not in log and "╭" not in log
    assert "No nodes ran" not in log and "Running node" not in log
    assert "Mlflow run" not in log
    with sqlite3.connect(fresh_clone / "tracking.db") as db:  # kedro-mlflow made the experiment
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone() == (0,)
    # evaluation first reads the image index (which query and gallery), then the model
    assert _error_lines(log) == [
        "Error: `image_index` does not exist yet (nothing at "
        "data/02_intermediate/image_index.parquet); the `data_ingestion` stage makes it.",
        "Make it with `kedro run --pipelines full`, or point `image_index` at an existing file in "
        "conf/local/catalog.yml. (--verbose: traceback)",
    ]


def test_load_version_that_does_not_exist(tmp_path):
    ingested = copy_project(tmp_path)
    index = ingested / "data" / "02_intermediate" / "image_index.parquet"
    index.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"split": ["query"], "path": ["q.jpg"], "pid": [1], "camid": [0]}).to_parquet(
        index)
    captions = ingested / "data" / "03_primary" / "image_captions.parquet"
    captions.parent.mkdir(parents=True)  # evaluation reads it too (checked when the run starts)
    pd.DataFrame({"path": [], "pid": [], "caption": [], "source": []}).to_parquet(captions)
    versions = ingested / "data" / "06_models" / "reid_model.pt"
    (versions / "2026-01-01T00.00.00.000Z").mkdir(parents=True)
    result = kedro(ingested, "run", "--pipeline", "evaluation", "--env", "e2e",
                   "--load-versions", "reid_model:2020-01-01T00.00.00.000Z")
    log = output(result)
    assert result.returncode == 1, log[-3000:]
    assert "Traceback" not in log
    assert _error_lines(log) == [
        "Error: `reid_model` has no version '2020-01-01T00.00.00.000Z' in "
        "data/06_models/reid_model.pt (from --load-versions).",
        "Available (newest first): 2026-01-01T00.00.00.000Z; leave `reid_model` out of "
        "--load-versions to use the newest. (--verbose: traceback)",
    ]


def test_own_error_is_its_message_and_verbose_gives_the_traceback(fresh_clone):
    args = ("run", "--pipelines", "data_ingestion", "--env", "e2e",
            "--params", "dataset.source=local,dataset.root=data/01_raw/nowhere")
    short = kedro(fresh_clone, *args)
    assert short.returncode == 1
    assert "Traceback" not in output(short)
    lines = _error_lines(output(short))
    assert lines[0] == "Error: DatasetLayoutError: Dataset folder not found: data/01_raw/nowhere"
    assert lines[-1].endswith("(--verbose: traceback)") and len(lines) < 20  # + expected layout
    verbose = kedro(fresh_clone, *args, "--verbose")
    assert verbose.returncode == 1
    assert "Traceback" in output(verbose) and "DatasetLayoutError" in output(verbose)
