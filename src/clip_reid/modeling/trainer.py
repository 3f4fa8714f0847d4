"""The training lifecycle shared by every stage: devices, precision, resume, clean-up, progress.

Trainer settings come from parameters so the same code runs on a CPU laptop (fp32/bf16) and on
one or many GPUs (16-mixed/bf16-mixed, DDP). :func:`fit_resumable` is the one way a stage trains:
it claims its work folder (a folder the project did not create is never touched), resumes from
the ``last.ckpt`` an interrupted run with the same settings left there (random state included,
so the resumed run ends with the same weights), refuses to return a half-trained model, and
finally removes only the files it wrote.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import mlflow
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger, MLFlowLogger
from torch.utils.data import DataLoader

from clip_reid.engine_settings import ENGINES, RayTrainSettings
from clip_reid.modeling.work_dir import (
    FINGERPRINT_FILE,
    PROGRESS_FILE,
    RESUME_FILE,
    RUN_FILE,
    claim,
    finish,
    move_aside,
    remove_own_files,
)
from clip_reid.settings_base import Settings, setting

logger = logging.getLogger(__name__)

RESUMED_FROM_TAG = "clip_reid.resumed_from"
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
PRECISIONS = ("32-true", "32", "bf16-mixed", "bf16-true", "16-mixed", "16-true", "64-true")


@dataclass(frozen=True)
class TrainerSettings(Settings):
    """The Lightning Trainer options a user may set per environment (the `trainer` block)."""

    accelerator: str = setting("auto", choices=ACCELERATORS)
    devices: int | str = 1
    strategy: str = "auto"
    precision: str = setting("32-true", choices=PRECISIONS)
    deterministic: bool = True
    num_workers: int = setting(0, ge=0)  # DataLoader workers of training and feature extraction
    num_threads: int | None = setting(None, ge=1)  # CPU threads; None: the free cores (threads.py)
    log_every_n_steps: int = setting(10, ge=1)
    enable_progress_bar: bool = True
    extra: dict[str, Any] = setting(default_factory=dict)  # other L.Trainer arguments
    engine: str = setting("local", choices=ENGINES)  # ray: stages 1 and 2 on Ray Train workers
    ray: RayTrainSettings = setting(default_factory=RayTrainSettings)

    def __post_init__(self) -> None:
        if isinstance(self.devices, int) and self.devices < 1:
            raise ValueError(f"devices must be >= 1 or 'auto', got {self.devices}.")


def resolve_device(settings: TrainerSettings, explicit: str | None = None) -> torch.device:
    """The one device feature extraction runs on: ``explicit`` if given, else the trainer's
    accelerator (``auto`` picks CUDA when present)."""
    if explicit:
        return torch.device(explicit)
    accelerator = settings.accelerator
    if accelerator == "auto":
        accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device({"gpu": "cuda"}.get(accelerator, accelerator))


def _fingerprint(settings: dict[str, Any]) -> str:
    """A stable hash of everything that makes a resume checkpoint compatible."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def _readable(checkpoint: Path) -> bool:
    """Whether ``checkpoint`` loads (a kill during a save or a full disk can truncate it)."""
    try:
        torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure to load means "cannot resume"
        aside = move_aside(checkpoint)
        logger.warning("Cannot resume from %s (%s: %s); moved it to %s and starting this stage "
                       "afresh.", checkpoint, type(error).__name__, error, aside)
        return False
    return True


def resume_checkpoint(work_dir: Path, run_settings: dict[str, Any]) -> Path | None:
    """The checkpoint to resume from, if an interrupted run with the same settings left one
    (an unreadable one is moved aside). Otherwise the folder is reset for a fresh run."""
    claim(work_dir)
    checkpoint = work_dir / RESUME_FILE
    if checkpoint.is_file():
        if same_settings(work_dir, run_settings):
            if _readable(checkpoint):
                logger.info("Resuming from %s%s", checkpoint, link_to_interrupted_run(work_dir))
                return checkpoint
        else:
            logger.warning("Ignoring %s: it was written with other settings.", checkpoint)
    start_afresh(work_dir, run_settings)
    return None


def same_settings(work_dir: Path, run_settings: dict[str, Any]) -> bool:
    """Whether the run that last trained into ``work_dir`` had these settings (its state may
    then be resumed; any other state is incompatible)."""
    path = work_dir / FINGERPRINT_FILE
    return (path.is_file()
            and json.loads(path.read_text()).get("fingerprint") == _fingerprint(run_settings))


def start_afresh(work_dir: Path, run_settings: dict[str, Any]) -> None:
    """Remove the stage's earlier state from its (claimed) work folder and record the settings
    of the run that trains into it now."""
    remove_own_files(work_dir)
    (work_dir / FINGERPRINT_FILE).write_text(json.dumps(
        {"fingerprint": _fingerprint(run_settings), "settings": run_settings},
        default=str, indent=2))


def link_to_interrupted_run(work_dir: Path) -> str:
    """Tag the active MLflow run with the run whose checkpoint it resumes (its metrics of the
    epochs before the interruption live there); `` (MLflow run <id>)`` for the log line."""
    path = work_dir / RUN_FILE
    previous = json.loads(path.read_text())["run_id"] if path.is_file() else None
    if previous is None or mlflow.active_run() is None:
        return ""
    mlflow.set_tag(RESUMED_FROM_TAG, previous)
    return f", left by MLflow run {previous} (tag {RESUMED_FROM_TAG})"


def record_run(work_dir: Path) -> None:
    """Which MLflow run trains into ``work_dir`` now, for a later resume to name."""
    run = mlflow.active_run()
    if run is not None:
        (work_dir / RUN_FILE).write_text(json.dumps({"run_id": run.info.run_id}))


class ResumePoint(Callback):
    """After every epoch: the resumable checkpoint (written to a temporary name, then renamed,
    so a kill mid-save keeps the previous one) and the count of finished epochs (readable after
    spawned DDP workers exit)."""

    def __init__(self, work_dir: Path) -> None:
        self.checkpoint = work_dir / RESUME_FILE
        self.progress = work_dir / PROGRESS_FILE

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        partial = self.checkpoint.with_name(f"{RESUME_FILE}.partial")
        trainer.save_checkpoint(partial, weights_only=False)  # every rank: a collective call
        if trainer.is_global_zero:
            partial.replace(self.checkpoint)
            self.progress.write_text(json.dumps({"epochs_completed": trainer.current_epoch + 1}))


def epochs_completed(work_dir: Path) -> int:
    """Epochs the last run in ``work_dir`` finished (0 when none)."""
    path = work_dir / PROGRESS_FILE
    return json.loads(path.read_text())["epochs_completed"] if path.is_file() else 0


class RandomState(Callback):
    """Saves the random state (torch, numpy, python, and the given generators) in every
    checkpoint and restores it on resume, so sampling and augmentation after a resume draw
    exactly what an uninterrupted run draws."""

    def __init__(self, generators: Sequence[torch.Generator] = ()) -> None:
        self.generators = list(generators)

    def state_dict(self) -> dict[str, Any]:
        numpy_state = np.random.get_state(legacy=False)
        return {
            "torch": torch.get_rng_state(),
            "numpy_key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "numpy_rest": [numpy_state["state"]["pos"], numpy_state["has_gauss"],
                           numpy_state["gauss"]],
            "python": list(random.getstate()[1]),
            "python_gauss": random.getstate()[2],
            "generators": [g.get_state() for g in self.generators],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        pos, has_gauss, gauss = state["numpy_rest"]
        np.random.set_state({"bit_generator": "MT19937",
                             "state": {"key": state["numpy_key"].numpy().astype(np.uint32),
                                       "pos": pos},
                             "has_gauss": has_gauss, "gauss": gauss})
        random.setstate((3, tuple(state["python"]), state["python_gauss"]))
        for generator, saved in zip(self.generators, state["generators"], strict=True):
            generator.set_state(saved)


class EpochLog(Callback):
    """One plain line per epoch (stage, epoch i/N, losses, lr, seconds per epoch, ETA), readable
    in a log file without a terminal; also logs the learning rate as ``<stage>/lr``."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.started = 0.0
        self.lr = float("nan")
        self.durations: list[float] = []

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.started = time.perf_counter()
        # The epoch's rate: Lightning steps epoch schedulers before on_train_epoch_end.
        if trainer.optimizers:
            self.lr = trainer.optimizers[0].param_groups[0]["lr"]

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        seconds = time.perf_counter() - self.started
        self.durations.append(seconds)
        lr = self.lr
        for logger_ in trainer.loggers:
            logger_.log_metrics({"lr": lr}, step=trainer.current_epoch)
        if not trainer.is_global_zero:
            return
        epoch, total = trainer.current_epoch + 1, trainer.max_epochs or 0
        epoch_values = {  # Lightning keeps `x` and `x_epoch` for metrics logged per step too
            name.removesuffix("_epoch"): float(value)
            for name, value in sorted(trainer.callback_metrics.items())
            if value.numel() == 1 and not name.endswith("_step")
        }
        losses = " ".join(f"{name}={value:.4f}" for name, value in epoch_values.items())
        eta = (total - epoch) * sum(self.durations) / len(self.durations)
        logger.info("%s epoch %d/%d: %s lr=%.3g %.1f s/epoch ETA %s", self.stage, epoch, total,
                    losses, lr, seconds, _clock(eta))


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class TrainingInterrupted(RuntimeError):
    """Training stopped before max_epochs; its resumable state is kept for the next run."""


def raise_if_interrupted(trainer: L.Trainer, work_dir: Path) -> None:
    """A stage stopped early (Ctrl-C, a callback's ``should_stop``) must not save a final
    model."""
    done = epochs_completed(work_dir)
    if trainer.interrupted or done < (trainer.max_epochs or 0) or done == 0:
        how = "was interrupted (Ctrl-C)" if trainer.interrupted else "stopped"
        raise TrainingInterrupted(
            f"Training {how} at epoch {done} of {trainer.max_epochs}. Run the "
            f"same command again to resume from {work_dir / RESUME_FILE}."
        )


@contextmanager
def _ctrl_c_as_interruption(fit: L.Trainer) -> Iterator[None]:
    """Lightning answers Ctrl-C with ``sys.exit(1)`` after ignoring further SIGINTs: the exit
    would skip Kedro's error hooks (MLflow then marks the run FINISHED at exit) and the resume
    advice. Let it end the fit instead (the caller's :func:`raise_if_interrupted` then raises
    :class:`TrainingInterrupted`) and restore the Ctrl-C handler."""
    handler = signal.getsignal(signal.SIGINT)
    try:
        yield
    except SystemExit:
        if not fit.interrupted:
            raise
    finally:
        if handler is not None and signal.getsignal(signal.SIGINT) != handler:
            signal.signal(signal.SIGINT, handler)


class StageLogger(MLFlowLogger):
    """MLflow metric names ``<stage>/<metric>``, so the MLflow UI groups them by stage; per epoch
    only: Lightning's ``epoch`` counter (a metric on every call) and the ``*_step`` copies of
    metrics also logged per epoch would bury the losses under a hundred near-identical series
    points."""

    LOGGER_JOIN_CHAR = "/"

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        kept = {name: value for name, value in metrics.items()
                if name != "epoch" and not name.endswith("_step")}
        if kept:
            super().log_metrics(kept, step)


def mlflow_logger(stage: str) -> Logger | None:
    """Log into the MLflow run kedro-mlflow opened (if any), so all stages share one run."""
    run = mlflow.active_run()
    if run is None:
        return None
    return StageLogger(tracking_uri=mlflow.get_tracking_uri(), run_id=run.info.run_id,
                       prefix=stage, log_model=False)


def build_trainer(
    settings: TrainerSettings,
    max_epochs: int,
    work_dir: Path,
    stage: str,
    callbacks: Sequence[Callback] = (),
) -> L.Trainer:
    """A Trainer that checkpoints every epoch into ``work_dir`` and logs to MLflow."""
    loggers = [lg for lg in [mlflow_logger(stage)] if lg is not None]
    all_callbacks = [ResumePoint(work_dir), EpochLog(stage), *callbacks]
    return L.Trainer(
        max_epochs=max_epochs,
        accelerator=settings.accelerator,
        devices=settings.devices,
        strategy=settings.strategy,
        precision=settings.precision,
        deterministic=settings.deterministic,
        log_every_n_steps=settings.log_every_n_steps,
        # a bar on a terminal only: in a log file its frames are noise (EpochLog says the same)
        enable_progress_bar=settings.enable_progress_bar and sys.stderr.isatty(),
        enable_model_summary=False,
        enable_checkpointing=False,  # ResumePoint writes the one checkpoint a stage needs
        use_distributed_sampler=False,  # our samplers split whole P×K batches across ranks
        logger=loggers or False,
        callbacks=all_callbacks,
        default_root_dir=work_dir,
        **settings.extra,
    )


@dataclass(frozen=True)
class FitResult:
    """What a finished stage reports: epochs trained and the last epoch's scalar metrics."""

    epochs: int
    metrics: dict[str, float]


def fit_resumable(
    module: L.LightningModule,
    data: L.LightningDataModule | DataLoader,
    *,
    stage: str,
    work_dir: Path,
    max_epochs: int,
    trainer: TrainerSettings,
    fingerprint: dict[str, Any],
    generators: Sequence[torch.Generator] = (),
    callbacks: Sequence[Callback] = (),
) -> FitResult:
    """Train ``module`` to ``max_epochs``: resume → fit → interrupt check → clean-up.

    ``fingerprint`` holds everything that makes an earlier run's checkpoint reusable;
    ``generators`` are the random generators of ``data`` whose state a resume must restore;
    ``callbacks`` are added to the Trainer (e.g. a test's crash injector).
    """
    resume = resume_checkpoint(work_dir, fingerprint)
    record_run(work_dir)
    fit = build_trainer(trainer, max_epochs, work_dir, stage,
                        [RandomState(generators), *callbacks])
    data_kind = "datamodule" if isinstance(data, L.LightningDataModule) else "train_dataloaders"
    with _ctrl_c_as_interruption(fit):
        fit.fit(module, ckpt_path=resume, weights_only=True, **{data_kind: data})
    raise_if_interrupted(fit, work_dir)
    epochs = epochs_completed(work_dir)
    finish(work_dir)
    metrics = {k: float(v) for k, v in fit.callback_metrics.items() if v.numel() == 1}
    return FitResult(epochs, metrics)
