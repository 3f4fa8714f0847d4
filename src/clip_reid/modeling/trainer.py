"""Lightning Trainer construction shared by both training stages: devices, precision, resume.

Trainer settings come from parameters so the same code runs on a CPU laptop (fp32/bf16) and on
one or many GPUs (16-mixed/bf16-mixed, DDP). A stage writes a resumable ``last.ckpt`` into its
work folder every epoch; a re-run with the same settings resumes from it instead of starting
over, and a finished stage removes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import mlflow
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import Logger, MLFlowLogger

logger = logging.getLogger(__name__)

RESUME_FILE = "last.ckpt"
FINGERPRINT_FILE = "settings.json"
PROGRESS_FILE = "progress.json"


@dataclass
class TrainerSettings:
    """The Lightning Trainer options a user may set per environment."""

    max_epochs: int
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    precision: str = "32-true"
    deterministic: bool = True
    num_workers: int = 0
    log_every_n_steps: int = 10
    enable_progress_bar: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> TrainerSettings:
        """Build from a parameters dict; unknown keys fail loudly rather than being ignored."""
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(params) - known
        if unknown:
            raise ValueError(
                f"Unknown trainer parameters {sorted(unknown)}; known: {sorted(known)}. "
                "Put other Lightning Trainer arguments under `extra`."
            )
        return cls(**params)


def _fingerprint(settings: dict[str, Any]) -> str:
    """A stable hash of everything that makes a resume checkpoint compatible."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def resume_checkpoint(work_dir: Path, run_settings: dict[str, Any]) -> Path | None:
    """The checkpoint to resume from, if an interrupted run with the same settings left one."""
    work_dir.mkdir(parents=True, exist_ok=True)
    fingerprint_file = work_dir / FINGERPRINT_FILE
    fingerprint = _fingerprint(run_settings)
    checkpoint = work_dir / RESUME_FILE
    if checkpoint.is_file() and fingerprint_file.is_file():
        if json.loads(fingerprint_file.read_text()).get("fingerprint") == fingerprint:
            logger.info("Resuming from %s", checkpoint)
            return checkpoint
        logger.warning("Ignoring %s: it was written with other settings.", checkpoint)
    shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True)
    fingerprint_file.write_text(json.dumps({"fingerprint": fingerprint, "settings": run_settings},
                                           default=str, indent=2))
    return None


class EpochProgress(Callback):
    """Records finished epochs in the work folder (readable after spawned DDP workers exit)."""

    def __init__(self, work_dir: Path) -> None:
        self.path = work_dir / PROGRESS_FILE

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.path.write_text(json.dumps({"epochs_completed": trainer.current_epoch + 1}))


def epochs_completed(work_dir: Path) -> int:
    """Epochs the last run in ``work_dir`` finished (0 when none)."""
    path = work_dir / PROGRESS_FILE
    return json.loads(path.read_text())["epochs_completed"] if path.is_file() else 0


class TrainingInterrupted(RuntimeError):
    """Training stopped before max_epochs; its resumable state is kept for the next run."""


def raise_if_interrupted(trainer: L.Trainer, work_dir: Path) -> None:
    """Lightning turns Ctrl-C into a graceful stop; a stage must not then save a final model."""
    done = epochs_completed(work_dir)
    if trainer.interrupted or done < (trainer.max_epochs or 0):
        raise TrainingInterrupted(
            f"Training stopped at epoch {done} of {trainer.max_epochs}. Run the "
            f"same command again to resume from {work_dir / RESUME_FILE}."
        )


def finish_work_dir(work_dir: Path) -> None:
    """A finished stage's resume state is obsolete: remove it so a new run starts afresh."""
    shutil.rmtree(work_dir, ignore_errors=True)


class StageCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint for a stage's work folder.

    That folder is never empty by design (the settings fingerprint, and on resume the
    ``last.ckpt`` being resumed, which this callback then overwrites), so Lightning's "Checkpoint
    directory ... exists and is not empty" notice would appear in every run and mean nothing.
    """

    def _ModelCheckpoint__warn_if_dir_not_empty(self, dirpath: Any) -> None:
        return None


def mlflow_logger(prefix: str) -> Logger | None:
    """Log into the MLflow run kedro-mlflow opened (if any), so all stages share one run."""
    run = mlflow.active_run()
    if run is None:
        return None
    return MLFlowLogger(
        tracking_uri=mlflow.get_tracking_uri(),
        run_id=run.info.run_id,
        prefix=prefix,
        log_model=False,
    )


def build_trainer(
    settings: TrainerSettings,
    work_dir: Path,
    stage: str,
    callbacks: list[Callback] | None = None,
) -> L.Trainer:
    """A Trainer that checkpoints every epoch into ``work_dir`` and logs to MLflow."""
    loggers = [lg for lg in [mlflow_logger(stage)] if lg is not None]
    all_callbacks = [
        StageCheckpoint(dirpath=work_dir, filename=RESUME_FILE.removesuffix(".ckpt"),
                        save_top_k=1, every_n_epochs=1, enable_version_counter=False),
        EpochProgress(work_dir),
        *(callbacks or []),
    ]
    if loggers:
        all_callbacks.append(LearningRateMonitor(logging_interval="epoch"))
    return L.Trainer(
        max_epochs=settings.max_epochs,
        accelerator=settings.accelerator,
        devices=settings.devices,
        strategy=settings.strategy,
        precision=settings.precision,
        deterministic=settings.deterministic,
        log_every_n_steps=settings.log_every_n_steps,
        enable_progress_bar=settings.enable_progress_bar,
        enable_model_summary=False,
        use_distributed_sampler=False,  # our samplers split whole P×K batches across ranks
        logger=loggers or False,
        callbacks=all_callbacks,
        default_root_dir=work_dir,
        **settings.extra,
    )
