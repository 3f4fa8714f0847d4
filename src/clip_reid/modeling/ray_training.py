"""A training stage on Ray Train workers (``trainer.engine: ray``), driven by one process.

The caller (the Kedro node) stays the only writer of artifacts: workers train with Lightning's
DDP through ``RayDDPStrategy`` and report each epoch's metrics; after every epoch rank 0 hands
Ray Train a resumable Lightning checkpoint (weights, optimizer, schedule, random state) and the
metrics so far, which Ray keeps in the stage's run folder (``trainer.ray.storage_path``, else the
stage's ``work_dir``). A rerun with the same settings finds it there and resumes at the next
epoch; other settings start afresh. The driver loads the last checkpoint's weights
(``weights_only``, strict keys) into its own module, logs the metrics to the active MLflow run
(a multi-node run is one MLflow run) and removes the run folder. Imported only when the Ray
engine is chosen.
"""

from __future__ import annotations

import json
import logging
import signal
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import pyarrow.fs
import ray.train
import torch
from lightning.pytorch.callbacks import Callback
from ray import cloudpickle
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment, prepare_trainer
from ray.train.torch import TorchTrainer

from clip_reid.modeling.trainer import (
    FitResult,
    RandomState,
    TrainerSettings,
    TrainingInterrupted,
    link_to_interrupted_run,
    mlflow_logger,
    record_run,
    same_settings,
    start_afresh,
)
from clip_reid.modeling.work_dir import RAY_RUN_DIR, RESUME_FILE, claim, finish
from clip_reid.ray_session import connect

logger = logging.getLogger(__name__)

HISTORY_FILE = "epochs.json"
EPOCH_PREFIX = "epoch_"  # a reported checkpoint's folder: epoch_0003 after the third epoch


@dataclass(frozen=True)
class RunFolder:
    """Where Ray Train keeps a stage's checkpoints: ``<storage_path>/clip_reid-<stage>`` (shared
    storage on a cluster, any pyarrow URI), else ``<work_dir>/ray_train``."""

    root: str
    name: str

    @classmethod
    def of(cls, storage_path: str | None, work_dir: Path, stage: str) -> RunFolder:
        if storage_path is None:
            return cls(str(work_dir.resolve()), RAY_RUN_DIR)
        local = "://" not in storage_path
        return cls(str(Path(storage_path).resolve()) if local else storage_path,
                   f"clip_reid-{stage}")

    def __str__(self) -> str:
        return f"{self.root.rstrip('/')}/{self.name}"

    def _located(self) -> tuple[pyarrow.fs.FileSystem, str]:
        filesystem, path = pyarrow.fs.FileSystem.from_uri(self.root)
        return filesystem, f"{path.rstrip('/')}/{self.name}"

    def last_epoch(self) -> int:
        """The newest epoch a checkpoint was reported for (0: none)."""
        filesystem, path = self._located()
        found = filesystem.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True))
        return max((int(info.base_name.removeprefix(EPOCH_PREFIX)) for info in found
                    if info.type == pyarrow.fs.FileType.Directory
                    and info.base_name.startswith(EPOCH_PREFIX)), default=0)

    def remove(self) -> None:
        filesystem, path = self._located()
        if filesystem.get_file_info(path).type != pyarrow.fs.FileType.NotFound:
            filesystem.delete_dir(path)


class _ReportEpoch(Callback):
    """After every epoch: rank 0's resumable checkpoint and the metrics of every epoch so far,
    reported to Ray Train (which persists it before the next epoch starts); every rank reports
    the epoch's (already rank-synced) metrics."""

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []
        self.lr = float("nan")

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.lr = trainer.optimizers[0].param_groups[0]["lr"]  # the epoch's rate, as EpochLog

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        # The names the local engine's MLflow logger records at epoch end: `x_epoch` for a value
        # logged per step and per epoch, `x` for one logged per epoch only.
        found = trainer.callback_metrics
        metrics = {name: float(value) for name, value in sorted(found.items())
                   if value.numel() == 1 and not name.endswith("_step")
                   and f"{name}_epoch" not in found} | {"lr": self.lr}
        epoch = trainer.current_epoch + 1
        self.history.append(metrics | {"epoch": epoch})
        with tempfile.TemporaryDirectory(prefix="clip_reid_epoch_") as folder:
            trainer.save_checkpoint(Path(folder) / RESUME_FILE, weights_only=False)  # collective
            checkpoint = None
            if trainer.is_global_zero:
                (Path(folder) / HISTORY_FILE).write_text(json.dumps(self.history))
                checkpoint = ray.train.Checkpoint.from_directory(folder)
            ray.train.report(metrics, checkpoint=checkpoint,
                             checkpoint_dir_name=f"{EPOCH_PREFIX}{epoch:04d}")


def _train_worker(config: dict[str, Any]) -> None:
    """One DDP rank: the same seed everywhere; the data module's sampler reads this rank's
    place from the trainer, so each rank trains on its own part of every global batch. Resumes
    from the checkpoint Ray Train restored, if any."""
    settings: TrainerSettings = config["trainer"]
    # One pickle for all: the callbacks keep referring to the very sampler/generators of `data`.
    parts = cloudpickle.loads(config["payload"])
    L.seed_everything(config["seed"], workers=True, verbose=False)
    report = _ReportEpoch()
    with tempfile.TemporaryDirectory(prefix="clip_reid_worker_") as root:
        fit = prepare_trainer(L.Trainer(
            max_epochs=config["max_epochs"],
            accelerator="gpu" if settings.ray.use_gpu else "cpu",
            devices="auto",
            strategy=RayDDPStrategy(),
            plugins=[RayLightningEnvironment()],
            precision=settings.precision,
            deterministic=settings.deterministic,
            log_every_n_steps=settings.log_every_n_steps,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,  # _ReportEpoch hands Ray the one checkpoint a stage needs
            use_distributed_sampler=False,  # our samplers give each rank its part of a batch
            logger=False,  # the driver logs the reported metrics to MLflow
            callbacks=[report, RandomState(parts["generators"]), *parts["callbacks"]],
            default_root_dir=root,
            **settings.extra,
        ))
        restored = ray.train.get_checkpoint()
        if restored is None:
            fit.fit(parts["module"], datamodule=parts["data"])
            return
        with restored.as_directory() as folder:
            report.history = json.loads((Path(folder) / HISTORY_FILE).read_text())
            fit.fit(parts["module"], datamodule=parts["data"], ckpt_path=Path(folder) / RESUME_FILE,
                    weights_only=True)


def fit_on_ray(module: L.LightningModule, data: L.LightningDataModule, *, stage: str,
               work_dir: Path, max_epochs: int, trainer: TrainerSettings, seed: int,
               fingerprint: dict[str, Any], generators: Sequence[torch.Generator] = (),
               callbacks: Sequence[Callback] = ()) -> FitResult:
    """Train ``module`` on ``trainer.ray.num_workers`` Ray workers; ``module`` ends with the
    trained weights. ``data`` gives each rank its part of every global batch; ``fingerprint``,
    ``generators`` and ``callbacks`` are those of :func:`~clip_reid.modeling.trainer.fit_resumable`
    (the callbacks run on the workers)."""
    connect(trainer.ray.address)
    run = RunFolder.of(trainer.ray.storage_path, work_dir, stage)
    _resume_or_start_afresh(work_dir, fingerprint, run)
    record_run(work_dir)
    workers = trainer.ray.num_workers
    payload = cloudpickle.dumps({"module": module, "data": data, "generators": list(generators),
                                 "callbacks": list(callbacks)})
    trainer_run = TorchTrainer(
        _train_worker,
        train_loop_config={"payload": payload, "trainer": trainer, "seed": seed,
                           "max_epochs": max_epochs},
        scaling_config=ScalingConfig(
            num_workers=workers, use_gpu=trainer.ray.use_gpu,
            resources_per_worker={"CPU": trainer.ray.cpus_per_worker}),
        run_config=RunConfig(name=run.name, storage_path=run.root,
                             checkpoint_config=CheckpointConfig(num_to_keep=1),
                             failure_config=FailureConfig(max_failures=trainer.ray.max_failures)),
    )
    resume = (f"Run the same command again to resume from the last finished epoch, kept in "
              f"{run}.")
    try:
        with _caller_keeps_ctrl_c():
            result = trainer_run.fit()
    except ray.train.TrainingFailedError as error:
        raise RayStageFailed(
            f"{stage} on Ray Train stopped after epoch {run.last_epoch()} of {max_epochs}: "
            f"{_last_line(error)} (--verbose: the workers' traceback). {resume}") from error
    except (SystemExit, ray.exceptions.RayActorError):
        # Ray Train's Ctrl-C handler aborts the workers and exits, or its controller (an actor
        # pinned to this driver's node) ends under the waiting driver; which one comes first
        # is a race, and nothing else ends the controller while this process lives.
        raise TrainingInterrupted(
            f"{stage} on Ray Train was interrupted (Ctrl-C) after epoch {run.last_epoch()} of "
            f"{max_epochs}. {resume}") from None
    with result.checkpoint.as_directory() as folder:
        state = torch.load(Path(folder) / RESUME_FILE, map_location="cpu", weights_only=True)
        history = json.loads((Path(folder) / HISTORY_FILE).read_text())
    module.load_state_dict(state["state_dict"], strict=True)
    run.remove()
    finish(work_dir)
    _log_history(stage, history, workers)
    last = {k: v for k, v in history[-1].items() if k != "epoch"}
    return FitResult(len(history), last)


def _last_line(error: BaseException) -> str:
    """The worker's own error, which Ray's message ends with after the remote traceback."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


class RayStageFailed(RuntimeError):
    """A Ray stage's workers failed: the run fails (MLflow: FAILED, where Ctrl-C's
    :class:`TrainingInterrupted` ends it KILLED), and the last finished epoch is kept for a rerun
    to resume from."""


@contextmanager
def _caller_keeps_ctrl_c() -> Iterator[None]:
    """Ray Train answers Ctrl-C by aborting its workers and calling ``sys.exit(0)`` (or its
    controller actor ends under the waiting driver first), and it leaves its SIGINT handler
    installed after the fit, where a later Ctrl-C would exit with status 0 too. The caller turns
    the exit into :class:`TrainingInterrupted` (status 0 would end the Kedro run as a success
    with no model, and MLflow would mark it FINISHED); here the caller's own handler is put
    back."""
    handler = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)


def _resume_or_start_afresh(work_dir: Path, fingerprint: dict[str, Any], run: RunFolder) -> None:
    """Keep the run folder for Ray Train to resume from when the interrupted run had these
    settings (tagging the MLflow run with the interrupted one); otherwise clear it."""
    claim(work_dir)
    done = run.last_epoch()
    if done and same_settings(work_dir, fingerprint):
        logger.info("Resuming after epoch %d from Ray Train's checkpoint in %s%s", done, run,
                    link_to_interrupted_run(work_dir))
        return
    if done:
        logger.warning("Ignoring the checkpoint in %s: it was written with other settings.", run)
    run.remove()
    start_afresh(work_dir, fingerprint)


def _log_history(stage: str, history: list[dict[str, float]], workers: int) -> None:
    """The driver's MLflow record of the workers' epochs (``<stage>/<metric>``, step = epoch),
    and one log line per epoch. A resumed stage's checkpoint carries the epochs before the
    interruption too (that run's driver never received them), so all are logged here."""
    mlflow = mlflow_logger(stage)
    for row in history:
        epoch = int(row["epoch"])
        values = {k: v for k, v in row.items() if k != "epoch"}
        if mlflow is not None:
            mlflow.log_metrics(values, step=epoch - 1)
        losses = " ".join(f"{k.removesuffix('_epoch')}={v:.4g}" for k, v in sorted(values.items()))
        logger.info("%s epoch %d (Ray, %d workers): %s", stage, epoch, workers, losses)
