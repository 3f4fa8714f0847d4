"""Project hooks that shape a run: outputs read back at this run's own version."""

import pandas as pd
import pytest
from kedro.io import DataCatalog, Version
from kedro_datasets.pandas import CSVDataset

from clip_reid.hooks import RunOwnOutputsHook

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
