"""Project hooks that shape a run: outputs read back at this run's own version."""

from pathlib import Path

import mlflow
import pandas as pd
import pytest
from kedro.io import DataCatalog, Version
from kedro_datasets.pandas import CSVDataset

from clip_reid.project.hooks import MlflowArtifactHook, RunOwnOutputsHook

MINE, NEWER = "2026-01-01T00.00.00.000Z", "2026-01-01T00.00.20.000Z"


def test_a_run_reads_back_what_it_wrote_while_another_run_saved_a_newer_version(tmp_path):
    path = str(tmp_path / "model.csv")
    catalog = DataCatalog({"model": CSVDataset(filepath=path, version=Version(None, MINE))})

    def train() -> pd.DataFrame:
        # a concurrent run (later session timestamp) finishes its own training meanwhile
        CSVDataset(filepath=path, version=Version(None, NEWER)).save(
            pd.DataFrame({"run": ["other"]}))
        return pd.DataFrame({"run": ["mine"]})

    hook = RunOwnOutputsHook()
    hook.after_catalog_created(catalog)
    model = train()
    with pytest.warns(UserWarning, match="did not match load version"):  # Kedro sees the newer one
        catalog.save("model", model)
    hook.after_dataset_saved("model")
    assert catalog.load("model")["run"].tolist() == ["mine"]


def test_what_a_run_does_not_write_still_resolves_to_the_latest(tmp_path):
    path = str(tmp_path / "model.csv")
    CSVDataset(filepath=path, version=Version(None, NEWER)).save(pd.DataFrame({"run": ["old"]}))
    catalog = DataCatalog({"model": CSVDataset(filepath=path, version=Version(None, MINE))})
    RunOwnOutputsHook().after_catalog_created(catalog)
    assert catalog.exists("model")  # --only-missing-outputs sees the trained model
    assert catalog.load("model")["run"].tolist() == ["old"]


def test_marked_outputs_are_logged_as_artifacts_of_the_active_run(tmp_path, mlflow_tracking):
    marked = CSVDataset(filepath=str(tmp_path / "stats.csv"),
                        metadata={"mlflow_artifact": True, "artifact_path": "08_reporting"})
    catalog = DataCatalog({"stats": marked,
                           "plain": CSVDataset(filepath=str(tmp_path / "plain.csv"))})
    hook = MlflowArtifactHook()
    hook.after_catalog_created(catalog)
    experiment = mlflow.create_experiment("hooks", artifact_location=(tmp_path / "art").as_uri())
    with mlflow.start_run(experiment_id=experiment) as run:
        for name in ("stats", "plain"):
            catalog.save(name, pd.DataFrame({"a": [1]}))
            hook.after_dataset_saved(name, None)
    logged = mlflow.artifacts.list_artifacts(run_id=run.info.run_id, artifact_path="08_reporting")
    assert [Path(item.path).name for item in logged] == ["stats.csv"]
    assert not mlflow.artifacts.list_artifacts(run_id=run.info.run_id, artifact_path="plain")
