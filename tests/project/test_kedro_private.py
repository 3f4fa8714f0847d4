"""One test per private Kedro / kedro-mlflow attribute the project uses."""

import inspect

import click
import pandas as pd
import pytest
from kedro.framework.session import KedroSession
from kedro.io import DataCatalog, DatasetError, Version
from kedro.runner import SequentialRunner
from kedro_datasets.pandas import CSVDataset
from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook
from kedro_mlflow.io.metrics import MlflowMetricsHistoryDataset
from kedro_mlflow.pipeline.pipeline_ml import PipelineML

from clip_reid.io.stage_metrics import StageMetricsDataset
from clip_reid.project.kedro_private import (
    CATALOG_ERROR_DATASET,
    DATASET_REPR_FILEPATH,
    LOAD_FAILED,
    LOG_PARAM,
    METRIC_ITEM_ARGS,
    METRICS_PREFIX,
    RUNNER_RECORD,
    TURN_PIPELINE_TO_ML,
    UNKNOWN_PIPELINE,
    kedro_split_params,
    mlflow_enabled,
    mlflow_run_started_outside,
    pin_load_to_save_version,
    saved_path,
)
from clip_reid.project.mlflow_hooks import TrackedRunHook
from clip_reid.project.served_model import ServedPipelineML


def test_get_versioned_path_gives_the_file_a_versioned_save_wrote(tmp_path):
    stamp = "2026-01-01T00.00.00.000Z"  # what a session gives every versioned dataset
    dataset = CSVDataset(filepath=str(tmp_path / "t.csv"), version=Version(None, stamp))
    assert saved_path(dataset) == tmp_path / "t.csv" / stamp / "t.csv"


def test_filepath_of_an_unversioned_dataset(tmp_path):
    dataset = CSVDataset(filepath=str(tmp_path / "t.csv"))
    dataset.save(pd.DataFrame({"a": [1]}))
    assert saved_path(dataset) == tmp_path / "t.csv"


def test_pipeline_ml_still_rebinds_through_the_overridden_method():
    assert callable(getattr(PipelineML, TURN_PIPELINE_TO_ML))
    assert TURN_PIPELINE_TO_ML in ServedPipelineML.__dict__


def test_a_pinned_dataset_loads_its_own_save_version_not_a_newer_one(tmp_path):
    mine, newer = "2026-01-01T00.00.00.000Z", "2026-01-01T00.00.20.000Z"
    other_run = CSVDataset(filepath=str(tmp_path / "t.csv"), version=Version(None, newer))
    other_run.save(pd.DataFrame({"run": ["other"]}))
    dataset = CSVDataset(filepath=str(tmp_path / "t.csv"), version=Version(None, mine))
    assert pin_load_to_save_version(dataset)
    dataset.save(pd.DataFrame({"run": ["mine"]}))
    assert dataset.load()["run"].tolist() == ["mine"]
    unpinned = CSVDataset(filepath=str(tmp_path / "t.csv"), version=Version(None, mine))
    assert unpinned.load()["run"].tolist() == ["other"]  # what Kedro does by itself


def test_an_explicit_load_version_and_unversioned_datasets_are_left_alone(tmp_path):
    chosen = Version("2025-01-01T00.00.00.000Z", "2026-01-01T00.00.00.000Z")
    dataset = CSVDataset(filepath=str(tmp_path / "t.csv"), version=chosen)
    assert not pin_load_to_save_version(dataset)
    assert dataset.resolve_load_version() == chosen.load
    assert not pin_load_to_save_version(CSVDataset(filepath=str(tmp_path / "u.csv")))


def test_mlflow_hook_still_logs_node_parameters_through_the_overridden_method():
    assert callable(getattr(MlflowHook, LOG_PARAM))
    assert LOG_PARAM in TrackedRunHook.__dict__


def test_metrics_history_still_builds_its_calls_in_the_overridden_method_from_its_prefix():
    assert callable(getattr(MlflowMetricsHistoryDataset, METRIC_ITEM_ARGS))
    assert METRIC_ITEM_ARGS in StageMetricsDataset.__dict__
    assert getattr(MlflowMetricsHistoryDataset(prefix="stage"), METRICS_PREFIX) == "stage"


def test_mlflow_hook_state_reads_as_kedro_mlflow_sets_it():
    hook = MlflowHook()  # before a run: enabled, and no outside run seen yet
    assert mlflow_enabled(hook)
    hook._already_active_mlflow = True  # what after_context_created sets beside an active run
    assert mlflow_run_started_outside(hook)


def test_kedro_split_params_still_parses_kedros_params_option():
    option = click.Option(["--params"])
    parsed = kedro_split_params(click.Context(click.Command("run")), option, "a.b=1,c=x")
    assert parsed == {"a": {"b": 1}, "c": "x"}


def test_the_catalog_names_the_dataset_its_error_comes_from(tmp_path):
    catalog = DataCatalog({"scores": CSVDataset(filepath=str(tmp_path / "scores.csv"))})
    with pytest.raises(DatasetError) as caught:
        catalog.save("scores", "not a frame")
    assert CATALOG_ERROR_DATASET.match(str(caught.value))["name"] == "scores"


def test_a_failed_load_says_so_and_shows_the_file_in_the_datasets_repr(tmp_path):
    dataset = CSVDataset(filepath=str(tmp_path / "missing.csv"))
    with pytest.raises(DatasetError) as caught:
        dataset.load()
    assert str(caught.value).startswith(LOAD_FAILED)
    assert DATASET_REPR_FILEPATH.search(str(caught.value))["path"] == str(tmp_path / "missing.csv")
    assert DATASET_REPR_FILEPATH.search(repr(dataset))["path"] == str(tmp_path / "missing.csv")


def test_kedro_session_still_words_an_unknown_pipeline_this_way():
    # Raising it needs a bootstrapped project: tests/project/test_cli_errors.py does, by the CLI.
    assert UNKNOWN_PIPELINE in inspect.getsource(KedroSession.run)


def test_the_runner_kedro_records_is_named_by_its_class():
    assert RUNNER_RECORD.search(str(SequentialRunner()))[1] == "SequentialRunner"
