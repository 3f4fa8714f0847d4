"""kedro-mlflow's hook, made safe and legible for this project's runs.

``TrackedRunHook`` is kedro-mlflow 2.0.3's ``MlflowHook`` (registered in settings.py in place of
the plugin's own instance, see ``DISABLE_HOOKS_FOR_PLUGINS``) with three additions:

- credentials in URLs (``dataset.download.url``: ``user:password@``, ``?token=``) are redacted
  in everything it records: node parameters (``MlflowHook._log_param``, the single place they
  are logged, also as tags for long values) and the run tags made from Kedro's run parameters
  (``runtime_params``, the ``--params`` of the command);
- each run is tagged with what a reader filters by: ``pipeline``, ``env``, ``dataset``,
  ``dataset_root``, ``evaluated_dataset`` (in ``cross_dataset_evaluation``: the layout that
  reads ``evaluation.dataset``, plus ``evaluated_dataset_root``), ``backbone`` (the CLIP
  architecture) and ``backbone_weights``, and ``image_tower`` / ``image_weights`` when an
  ImageNet CNN replaces CLIP's image tower;
- a run whose process was killed (SIGKILL, OOM killer, power loss) never ends and stays
  RUNNING forever. Each run records the machine and process running it (``clip_reid.host``,
  ``clip_reid.pid``, ``clip_reid.pid_start``); the next run on that machine marks runs whose
  process is gone as KILLED, with one log line each;
- a run stopped by Ctrl-C (a stage's ``TrainingInterrupted``) ends KILLED, not FAILED (and the
  CLI marks a run KILLED when Ctrl-C lands outside a training stage); the ``runner`` tag
  holds the runner's class name, not its object repr.

Subclassing (rather than a second hook) is what makes the redaction reliable: kedro-mlflow logs
parameters from the node inputs themselves, which another hook cannot change without changing
what the node receives.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from kedro.io import CatalogProtocol
from kedro.pipeline import Pipeline
from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook
from kedro_mlflow.pipeline.pipeline_ml import PipelineML
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

from clip_reid.data.settings import MARKET_LAYOUT
from clip_reid.project.kedro_private import (
    RUNNER_RECORD,
    mlflow_enabled,
    mlflow_run_started_outside,
)
from clip_reid.project.redaction import redact

logger = logging.getLogger(__name__)

HOST_TAG = "clip_reid.host"
BOOT_TAG = "clip_reid.boot_id"
PID_TAG = "clip_reid.pid"
PID_START_TAG = "clip_reid.pid_start"
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
NOTE_TAG = "mlflow.note.content"  # the run's description: the first thing its page shows
_SUMMARY_ORDER = ("loss", "id_loss", "triplet_loss", "i2t_loss", "caption_loss")


class TrackedRunHook(MlflowHook):
    """kedro-mlflow's MlflowHook + redaction, descriptive tags and cleanup of killed runs."""

    def __init__(self) -> None:
        super().__init__()
        self._params: dict[str, Any] = {}
        self._env: str | None = None

    @hook_impl
    def after_context_created(self, context: KedroContext) -> None:
        super().after_context_created(context)
        self._params = dict(context.params)
        self._env = context.env or getattr(context.config_loader, "default_run_env", None)

    @hook_impl
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: CatalogProtocol
    ) -> None:
        shown = redact(run_params) | {"runner": runner_name(run_params.get("runner"))}
        super().before_pipeline_run(run_params=shown, pipeline=pipeline, catalog=catalog)
        if not mlflow_enabled(self):
            return
        mlflow.set_tags(run_tags(run_params, self._params, self._env) | process_tags())
        client = MlflowClient(tracking_uri=mlflow.get_tracking_uri())
        experiment_id = mlflow.get_run(self.run_id).info.experiment_id
        mark_killed_runs(client, experiment_id, current_run_id=self.run_id)

    @hook_impl
    def after_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: CatalogProtocol
    ) -> None:
        run_id = self.run_id
        if mlflow_enabled(self) and mlflow.active_run() is not None:
            if summary := run_summary(mlflow.get_run(run_id).data.metrics):
                mlflow.set_tag(NOTE_TAG, summary)
        super().after_pipeline_run(run_params=run_params, pipeline=pipeline, catalog=catalog)
        if mlflow_enabled(self) and isinstance(pipeline, PipelineML):
            point_alias_at_run(MlflowClient(tracking_uri=mlflow.get_tracking_uri()), run_id)

    @hook_impl
    def on_pipeline_error(
        self, error: Exception, run_params: dict[str, Any], pipeline: Pipeline,
        catalog: CatalogProtocol,
    ) -> None:
        if not (mlflow_enabled(self) and _interrupted(error)) or mlflow_run_started_outside(self):
            super().on_pipeline_error(error=error, run_params=run_params, pipeline=pipeline,
                                      catalog=catalog)
            return
        while mlflow.active_run():
            mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
        logger.info("MLflow run %s marked KILLED: it was interrupted.", self.run_id)

    def _log_param(self, name: str, value: Any) -> None:
        super()._log_param(name, redact(value))


def run_summary(metrics: Mapping[str, float]) -> str:
    """The run's description: each stage's last losses, then the evaluation figures, so the
    run page opens on them instead of an alphabetical list of a hundred metric names."""
    lines = []
    for stage in ("caption_finetune", "prompt_learning", "encoder_training"):
        losses = [f"{name} {value:.4f}" for name in _SUMMARY_ORDER
                  for key in (f"{stage}/{name}", f"{stage}/{name}_epoch")
                  if (value := metrics.get(key)) is not None]
        if losses:
            lines.append(f"- **{stage}** (last epoch): {', '.join(losses)}")
    for prefix in ("evaluation", "cross_dataset/evaluation", "baseline/evaluation"):
        figures = [f"{label} {metrics[f'{prefix}/{key}']:.2%}"
                   for key, label in (("rank1", "Rank-1"), ("mAP", "mAP"), ("mINP", "mINP"))
                   if f"{prefix}/{key}" in metrics]
        if figures:
            lines.append(f"- **{prefix}**: {', '.join(figures)}")
    return "\n".join(lines)


def point_alias_at_run(client: MlflowClient, run_id: str | None) -> str | None:
    """Point ``models:/clip_reid@current`` at the model version ``run_id`` registered, so serving
    the newest model needs no search; returns that URI (None if the run registered none)."""
    from clip_reid.project.served_model import CURRENT_ALIAS, REGISTERED_MODEL

    versions = client.search_model_versions(f"name = '{REGISTERED_MODEL}' and run_id = '{run_id}'")
    if not versions:
        return None
    version = max(versions, key=lambda v: int(v.version)).version
    client.set_registered_model_alias(REGISTERED_MODEL, CURRENT_ALIAS, version)
    uri = f"models:/{REGISTERED_MODEL}@{CURRENT_ALIAS}"
    logger.info("Model registered as %s (version %s); serve it with `mlflow models serve -m "
                "%s --env-manager local`.", uri, version, uri)
    return uri


def runner_name(runner: Any) -> str:
    """``SequentialRunner`` from Kedro's record of the runner (its class, or ``str()`` of the
    instance: ``<kedro.runner.sequential_runner.SequentialRunner object at 0x...>``)."""
    text = getattr(runner, "__name__", None) or str(runner)
    match = RUNNER_RECORD.search(text)
    return match[1] if match else text


def _interrupted(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) is the user stopping the run (Ctrl-C)."""
    from clip_reid.modeling.trainer import TrainingInterrupted

    while error is not None:
        if isinstance(error, TrainingInterrupted | KeyboardInterrupt):
            return True
        error = error.__cause__ or error.__context__
    return False


def run_tags(
    run_params: Mapping[str, Any], params: Mapping[str, Any], env: str | None
) -> dict[str, str]:
    """What a run is, as tags: the pipeline, the environment, the dataset and the backbone."""
    pipelines = run_params.get("pipeline_names") or ["__default__"]
    dataset = params.get("dataset") or {}
    clip = (params.get("model") or {}).get("clip") or {}
    # only that pipeline scores evaluation.dataset; its layout as the pipeline resolves it
    target = ((params.get("evaluation") or {}).get("dataset") or {})
    cross = "cross_dataset_evaluation" in pipelines and target.get("root") is not None
    tags = {
        "pipeline": "+".join(pipelines),
        "env": env,
        "dataset": dataset.get("name"),
        "dataset_root": dataset.get("root"),
        "evaluated_dataset": target.get("name") or MARKET_LAYOUT if cross else dataset.get("name"),
        "evaluated_dataset_root": target["root"] if cross else None,
        "backbone": clip.get("arch"),
        "backbone_weights": clip.get("weights"),
        # an ImageNet CNN in place of CLIP's image tower: which, and whose weights
        "image_tower": clip.get("image_tower") if clip.get("image_tower") != "clip" else None,
        "image_weights": clip.get("image_weights") if clip.get("image_tower") not in (
            None, "clip") else None,
    }
    return {key: redact(str(value)) for key, value in tags.items() if value is not None}


def process_tags() -> dict[str, str]:
    """Where this run's process lives, so a later run can tell whether it is still alive."""
    pid = os.getpid()
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(pid)}
    if (start := _process_start(pid)) is not None:
        tags[PID_START_TAG] = start
    if (boot := _boot_id()) is not None:
        tags[BOOT_TAG] = boot
    return tags


def mark_killed_runs(
    client: MlflowClient, experiment_id: str, current_run_id: str | None = None
) -> list[str]:
    """Mark RUNNING runs started on this machine by a process that no longer exists as KILLED.

    Runs from other machines are left alone (their processes cannot be checked from here).
    Returns the ids of the runs marked.
    """
    host = socket.gethostname().replace("'", "")
    running = client.search_runs(
        [experiment_id],
        filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'",
    )
    marked = []
    for run in running:
        if run.info.run_id == current_run_id or _process_alive(run.data.tags):
            continue
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))
        logger.warning(
            "MLflow run %s ('%s') was left RUNNING by process %s, which no longer exists on "
            "this machine (killed?): marked KILLED.",
            run.info.run_id, run.info.run_name, run.data.tags.get(PID_TAG),
        )
        marked.append(run.info.run_id)
    return marked


def _process_alive(tags: Mapping[str, str]) -> bool:
    """Whether the process named in a run's tags still runs (the same process, not a new one
    that reused its pid after it exited or after a reboot)."""
    try:
        pid = int(tags[PID_TAG])
    except (KeyError, ValueError):
        return True  # not recorded by this hook: cannot tell, leave it alone
    boot = _boot_id()
    if boot is not None and tags.get(BOOT_TAG) not in (None, boot):
        return False  # the machine rebooted since
    start = _process_start(pid)
    if start is not None:
        return tags.get(PID_START_TAG) in (None, start)
    if Path("/proc/self/stat").exists():
        return False  # /proc works here and has no such pid
    try:
        os.kill(pid, 0)  # no /proc (macOS): signal 0 only checks existence
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux ``/proc/<pid>/stat`` field
    22), which tells a process from a later one that reused its pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # fields after "pid (comm)" start at field 3


def _boot_id() -> str | None:
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return None
