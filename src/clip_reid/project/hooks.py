"""Project hooks: parameters checked before any node runs, outputs read back from this run's
own version, and catalog outputs marked ``metadata: {mlflow_artifact: true}`` logged as MLflow
artifacts.

kedro-mlflow's MlflowArtifactDataset cannot wrap a *versioned* dataset in Kedro 1.7 (the
wrapped dataset picks its own save timestamp, which the catalog rejects), and results must be
versioned so nothing is overwritten. This hook keeps the versioned dataset as is and logs the
file it just wrote into the active MLflow run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl
from kedro.io import CatalogProtocol
from kedro.pipeline import Pipeline

from clip_reid.project.kedro_private import pin_load_to_save_version, saved_path

logger = logging.getLogger(__name__)


class ParameterValidationHook:
    """Builds every stage's settings from the run's parameters before the first node (and
    before kedro-mlflow opens a run), so a misspelt key or a bad value stops the run at once
    with an error naming the parameter and the file that set it."""

    def __init__(self) -> None:
        self._conf_source: Path | None = None
        self._envs: list[str] = []

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        loader = context.config_loader
        self._conf_source = Path(str(loader.conf_source))
        self._envs = [loader.base_env, context.env or loader.default_run_env]

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline,
                            catalog: CatalogProtocol) -> None:
        from clip_reid.project.parameters import (
            TRAINING_STAGES,
            ParameterFiles,
            validate_parameters,
        )

        locate = None
        if self._conf_source is not None:
            locate = ParameterFiles(self._conf_source, self._envs,
                                    run_params["runtime_params"])
        running = [stage for stage in TRAINING_STAGES if f"params:{stage}" in pipeline.inputs()]
        validate_parameters(catalog.load("parameters"), locate, running)


class MissingInputsHook:
    """Stops a run that reads an earlier stage's output before that stage has run, before any
    node and before an MLflow run opens (``clip_reid.project.run_errors.missing_input``)."""

    @hook_impl(tryfirst=True)
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Any, catalog: CatalogProtocol
    ) -> None:
        from kedro.framework.project import pipelines

        from clip_reid.project.run_errors import MissingInputError, missing_input, producers

        pinned = set(run_params.get("load_versions") or {})  # a missing version has its message

        def exists(name: str) -> bool:
            return name in pinned or catalog.exists(name)

        message = missing_input(pipeline, exists, lambda name: repr(catalog.get(name)),
                                producers(pipelines))
        if message is not None:
            raise MissingInputError(message)


class ThreadsHook:
    """Chooses the run's CPU thread count once, before the first node
    (``clip_reid.project.threads``: ``trainer.num_threads``, else the cores free now), and logs
    the choice."""

    @hook_impl
    def before_pipeline_run(self, catalog: CatalogProtocol) -> None:
        from clip_reid.modeling.trainer import TrainerSettings
        from clip_reid.project.threads import apply_threads, choose_threads

        trainer = catalog.load("parameters").get("trainer")  # None: the defaults
        apply_threads(choose_threads(TrainerSettings.from_params(trainer, "trainer").num_threads))


class _CatalogHook:
    """A hook that acts on saved datasets and so needs the run's catalog to find them."""

    def __init__(self) -> None:
        self._catalog: CatalogProtocol | None = None

    @hook_impl
    def after_catalog_created(self, catalog: CatalogProtocol) -> None:
        self._catalog = catalog


class RunOwnOutputsHook(_CatalogHook):
    """A dataset a run writes and reads back (`reid_model` between encoder_training and
    evaluation) is read at the version this run wrote, even when another run in the same
    project saved a newer one meanwhile. Pinned once saved, so whatever this run does not
    write (`--only-missing-outputs`, inputs of a partial run) still resolves to the latest."""

    @hook_impl
    def after_dataset_saved(self, dataset_name: str) -> None:
        if self._catalog is not None:
            pin_load_to_save_version(self._catalog.get(dataset_name))


class MlflowArtifactHook(_CatalogHook):
    """After a marked dataset is saved, log the saved file under ``artifact_path`` (its layer)."""

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any) -> None:
        if self._catalog is None or mlflow.active_run() is None:
            return
        dataset = self._catalog.get(dataset_name)
        metadata = getattr(dataset, "metadata", None) or {}
        if not metadata.get("mlflow_artifact"):
            return
        path = saved_path(dataset)
        if path is None or not path.exists():
            logger.warning("Cannot log %s to MLflow: no local file was written.", dataset_name)
            return
        log = mlflow.log_artifacts if path.is_dir() else mlflow.log_artifact
        log(str(path), artifact_path=metadata.get("artifact_path", dataset_name))



class RayHook:
    """Connects to Ray before the first node when an engine parameter says ``ray`` (one
    connection for the whole run, to the one address the blocks share), and disconnects after
    the run, also when it fails. A run on the local engines never imports Ray."""

    def __init__(self) -> None:
        self._connected = False

    @hook_impl
    def before_pipeline_run(self, catalog: CatalogProtocol) -> None:
        from clip_reid.engine_settings import ray_address
        from clip_reid.project.parameters import validate_parameters

        settings = validate_parameters(catalog.load("parameters"))
        trainer = settings["trainer"]
        uses_ray, address = ray_address({
            "inference.embedding": _engine(settings["inference"].embedding),
            "evaluation.embedding": _engine(settings["evaluation"].embedding),
            "trainer.ray": (trainer.engine, trainer.ray.address),
        })
        if uses_ray:
            from clip_reid.ray_session import connect

            self._connected = connect(address)

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._disconnect()

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._disconnect()

    def _disconnect(self) -> None:
        if self._connected:
            from clip_reid.ray_session import disconnect

            disconnect()
            self._connected = False


def _engine(block: Any) -> tuple[str, str | None]:
    return block.engine, block.address
