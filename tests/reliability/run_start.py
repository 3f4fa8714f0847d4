"""What `kedro run` does before its first node, for the fault cases stopped there: the
parameter hook sees the context, then the run's pipeline and parameters."""

from __future__ import annotations

from types import SimpleNamespace

from builders import REPO_ROOT
from kedro.io import DataCatalog, MemoryDataset

from clip_reid.pipeline_registry import register_pipelines
from clip_reid.project.hooks import ParameterValidationHook


def start_run(params: dict, runtime_params: dict | None = None, pipeline: str = "full") -> None:
    """The run-start checks of `kedro run --pipelines <pipeline>` on ``params`` (the merged
    parameters; ``runtime_params`` what --params gave)."""
    hook = ParameterValidationHook()
    loader = SimpleNamespace(conf_source=REPO_ROOT / "conf", base_env="base",
                             default_run_env="local")
    hook.after_context_created(SimpleNamespace(config_loader=loader, env=None))
    hook.before_pipeline_run({"runtime_params": runtime_params or {}},
                             register_pipelines()[pipeline],
                             DataCatalog({"parameters": MemoryDataset(params)}))
