"""Every private Kedro / kedro-mlflow API the project relies on, in one place.

Each is covered by tests/pipelines/test_kedro_private.py, so an upgrade that renames one fails
there, by name, instead of deep inside a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractVersionedDataset, Version
from kedro_mlflow.pipeline.pipeline_ml import PipelineML

# PipelineML re-checks its training/inference binding in this method whenever the pipeline is
# filtered; ServedPipelineML overrides it so partial runs do not fail.
TURN_PIPELINE_TO_ML = "_turn_pipeline_to_ml"
assert hasattr(PipelineML, TURN_PIPELINE_TO_ML)  # noqa: S101 - fail at import, not mid-run


def saved_path(dataset: Any) -> Path | None:
    """The local file a (possibly versioned) file-based dataset has just written."""
    if isinstance(dataset, AbstractVersionedDataset):
        version = dataset.resolve_save_version()  # None when the entry is not versioned
        if version is not None:
            return Path(str(dataset._get_versioned_path(version)))
    filepath = getattr(dataset, "_filepath", None)
    return Path(str(filepath)) if filepath is not None else None


def pin_load_to_save_version(dataset: Any) -> bool:
    """Make a versioned dataset load the version this run saves, instead of the newest on disk.

    Kedro resolves an unpinned load version to the latest timestamp at load time, so with two
    runs in one project a stage would read the other run's output (its session started later)
    and report a model it did not train. Only datasets without an explicit `--load-versions`
    are pinned. Returns whether it pinned."""
    version = getattr(dataset, "_version", None)
    if not isinstance(dataset, AbstractVersionedDataset) or version is None or version.load:
        return False
    dataset._version = Version(version.save, version.save)
    return True
