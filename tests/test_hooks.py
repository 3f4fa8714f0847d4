"""Project hooks that shape a run: outputs read back at this run's own version."""

import pandas as pd
from kedro.io import DataCatalog, MemoryDataset, Version
from kedro.pipeline import Node, Pipeline
from kedro.runner import SequentialRunner
from kedro_datasets.pandas import CSVDataset

from clip_reid.hooks import RunOwnOutputsHook

MINE, NEWER = "2026-01-01T00.00.00.000Z", "2026-01-01T00.00.20.000Z"


def test_a_run_reads_back_what_it_wrote_while_another_run_saved_a_newer_version(tmp_path):
    path = str(tmp_path / "model.csv")
    catalog = DataCatalog({"model": CSVDataset(filepath=path, version=Version(None, MINE)),
                           "seen": MemoryDataset()})

    def train() -> pd.DataFrame:
        # a concurrent run (later session timestamp) finishes its own training meanwhile
        CSVDataset(filepath=path, version=Version(None, NEWER)).save(
            pd.DataFrame({"run": ["other"]}))
        return pd.DataFrame({"run": ["mine"]})

    pipeline = Pipeline([Node(train, None, "model", name="train"),
                         Node(lambda model: model["run"].tolist(), "model", "seen",
                              name="evaluate")])
    RunOwnOutputsHook().before_pipeline_run(pipeline, catalog)
    SequentialRunner().run(pipeline, catalog)
    assert catalog.load("seen") == ["mine"]
