"""MLflow metrics named ``<stage>/<metric>`` (e.g. ``evaluation/rank1``), so the MLflow UI
groups a run's metrics by stage as it groups the Lightning loggers' ``<stage>/loss``."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from kedro_mlflow.io.metrics import MlflowMetricsHistoryDataset


class StageMetricsDataset(MlflowMetricsHistoryDataset):
    """kedro-mlflow's metrics history dataset with ``/`` (not ``.``) after the prefix; set
    ``prefix`` to the stage name in the catalog."""

    def _build_args_list_from_metric_item(
        self, key: str, value: Any
    ) -> Generator[tuple[str, float, int], None, None]:
        prefix, self._prefix = self._prefix, None  # the parent would join it with "."
        try:
            items = super()._build_args_list_from_metric_item(key, value)
        finally:
            self._prefix = prefix
        return ((f"{prefix}/{name}" if prefix else name, number, step)
                for name, number, step in items)
