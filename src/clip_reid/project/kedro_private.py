"""Every private Kedro / kedro-mlflow API the project relies on, in one place.

Private names (a leading underscore), overridden internal methods and the wording of Kedro's
messages that the project parses: none is a stable API, so each is named here once and covered
by tests/project/test_kedro_private.py, where an upgrade that renames or rewords one fails by
name instead of deep inside a run. Nothing else in the project touches them directly.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kedro.framework.cli.utils import _split_params as kedro_split_params
from kedro.io import AbstractVersionedDataset, Version
from kedro_mlflow.pipeline.pipeline_ml import PipelineML

if TYPE_CHECKING:  # importing the hook defines mlflow's model class, which warns (see filters)
    from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook

__all__ = [
    "CATALOG_ERROR_DATASET",
    "DATASET_REPR_FILEPATH",
    "LOAD_FAILED",
    "LOG_PARAM",
    "METRIC_ITEM_ARGS",
    "METRICS_PREFIX",
    "RUNNER_RECORD",
    "TURN_PIPELINE_TO_ML",
    "UNKNOWN_PIPELINE",
    "kedro_split_params",
    "mlflow_enabled",
    "mlflow_run_started_outside",
    "pin_load_to_save_version",
    "saved_path",
]

# --- kedro-mlflow methods the project overrides ---
# PipelineML re-checks its training/inference binding in this method whenever the pipeline is
# filtered; ServedPipelineML overrides it so partial runs do not fail (checked at import: a
# served model built without it would fail mid-run).
TURN_PIPELINE_TO_ML = "_turn_pipeline_to_ml"
assert hasattr(PipelineML, TURN_PIPELINE_TO_ML)  # noqa: S101
# MlflowHook logs every node parameter through this method; TrackedRunHook overrides it to
# redact credentials.
LOG_PARAM = "_log_param"
# MlflowMetricsHistoryDataset builds each metric's (name, value, step) calls here, joining its
# `_prefix` attribute with "."; StageMetricsDataset overrides it to join with "/".
METRIC_ITEM_ARGS = "_build_args_list_from_metric_item"
METRICS_PREFIX = "_prefix"

# --- the wording of Kedro's messages, parsed to explain an expected failure (run_errors) ---
# DataCatalog.load/save wrap a dataset's error as DatasetError(f"{name}: {error}").
CATALOG_ERROR_DATASET = re.compile(r"^(?P<name>[\w.:-]+): ")
# A file dataset's repr, quoted in Kedro's load/save errors, shows filepath=PurePosixPath('...').
DATASET_REPR_FILEPATH = re.compile(r"filepath=\w*Path\('(?P<path>[^']+)'\)")
# AbstractDataset.load wraps any error of a dataset's own load in this sentence.
LOAD_FAILED = "Failed while loading data from dataset"
# KedroSession.run's error for a --pipeline name the registry does not have.
UNKNOWN_PIPELINE = "Failed to find the pipeline named"
# Kedro records a run's runner as str() of the instance: "<...SequentialRunner object at 0x..>".
RUNNER_RECORD = re.compile(r"(\w+) object at 0x")


def mlflow_enabled(hook: MlflowHook) -> bool:
    """Whether kedro-mlflow's hook tracks the current run (not a pipeline it is told to skip)."""
    return bool(hook._is_mlflow_enabled)


def mlflow_run_started_outside(hook: MlflowHook) -> bool:
    """Whether an MLflow run was already active when Kedro's session started: its owner, not
    the hook, then ends it."""
    return bool(hook._already_active_mlflow)


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
