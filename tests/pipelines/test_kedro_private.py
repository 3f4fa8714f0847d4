"""One test per private Kedro / kedro-mlflow attribute the project uses."""

import pandas as pd
from kedro.io import Version
from kedro_datasets.pandas import CSVDataset
from kedro_mlflow.pipeline.pipeline_ml import PipelineML

from clip_reid.pipelines.inference.served_model import ServedPipelineML
from clip_reid.pipelines.kedro_private import (
    TURN_PIPELINE_TO_ML,
    pin_load_to_save_version,
    saved_path,
)


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
