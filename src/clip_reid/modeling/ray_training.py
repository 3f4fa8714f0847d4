"""A training stage on Ray Train workers (``trainer.engine: ray``), driven by one process.

The caller (the Kedro node) stays the only writer: workers train with Lightning's DDP through
``RayDDPStrategy`` and report each epoch's metrics; rank 0 alone hands back the final weights
as a Ray checkpoint, which the driver loads (``weights_only``, strict keys) into its own module
and removes. The driver logs the reported metrics to the active MLflow run, so a multi-node run
is one MLflow run. Imported only when the Ray engine is chosen.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import lightning as L
import ray.train
import torch
from lightning.pytorch.callbacks import Callback
from ray.train import CheckpointConfig, RunConfig, ScalingConfig
from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment, prepare_trainer
from ray.train.torch import TorchTrainer

from clip_reid.modeling.trainer import FitResult, TrainerSettings, mlflow_logger
from clip_reid.ray_session import connect

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "weights.pt"
HISTORY_FILE = "epochs.json"


class _ReportEpoch(Callback):
    """Every rank reports each epoch's (already rank-synced) metrics; after the last epoch rank
    0 attaches the module's weights and the metrics of every epoch."""

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
        self.history.append(metrics | {"epoch": trainer.current_epoch + 1})
        if trainer.current_epoch + 1 < (trainer.max_epochs or 0) or not trainer.is_global_zero:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            state = {name: tensor.detach().cpu() for name, tensor in module.state_dict().items()}
            torch.save(state, Path(folder) / WEIGHTS_FILE)
            (Path(folder) / HISTORY_FILE).write_text(json.dumps(self.history))
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))


def _train_worker(config: dict[str, Any]) -> None:
    """One DDP rank: the same seed everywhere; the data module's P×K sampler reads this rank's
    place from the trainer, so each rank trains on its own whole identity batches."""
    settings: TrainerSettings = config["trainer"]
    L.seed_everything(config["seed"], workers=True, verbose=False)
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
            enable_checkpointing=False,
            use_distributed_sampler=False,  # our samplers split whole P×K batches across ranks
            logger=False,  # the driver logs the reported metrics to MLflow
            callbacks=[_ReportEpoch()],
            default_root_dir=root,
            **settings.extra,
        ))
        fit.fit(config["module"], datamodule=config["data"])


def fit_on_ray(module: L.LightningModule, data: L.LightningDataModule, *, stage: str,
               max_epochs: int, trainer: TrainerSettings, seed: int) -> FitResult:
    """Train ``module`` on ``trainer.ray.num_workers`` Ray workers; ``module`` ends with the
    trained weights. ``data`` batches are per worker (the global batch is their sum)."""
    connect(trainer.ray.address)
    storage = trainer.ray.storage_path or tempfile.mkdtemp(prefix="clip_reid_ray_train_")
    name = f"{stage}-{uuid.uuid4().hex[:8]}"
    workers = trainer.ray.num_workers
    result = TorchTrainer(
        _train_worker,
        train_loop_config={"module": module, "data": data, "trainer": trainer, "seed": seed,
                           "max_epochs": max_epochs},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=trainer.ray.use_gpu,
                                     resources_per_worker={"CPU": trainer.ray.cpus_per_worker}),
        run_config=RunConfig(name=name, storage_path=storage,
                             checkpoint_config=CheckpointConfig(num_to_keep=1)),
    ).fit()
    try:
        if result.checkpoint is None:
            raise RuntimeError(f"Ray Train stopped before the last of {max_epochs} epochs "
                               f"({result.error}); no weights were returned or saved.")
        with result.checkpoint.as_directory() as folder:
            state = torch.load(Path(folder) / WEIGHTS_FILE, map_location="cpu",
                               weights_only=True)
            history = json.loads((Path(folder) / HISTORY_FILE).read_text())
        module.load_state_dict(state, strict=True)
    finally:
        shutil.rmtree(Path(storage) / name, ignore_errors=True)
        if trainer.ray.storage_path is None:
            shutil.rmtree(storage, ignore_errors=True)
    _log_history(stage, history, workers)
    last = {k: v for k, v in history[-1].items() if k != "epoch"}
    return FitResult(len(history), last)


def _log_history(stage: str, history: list[dict[str, float]], workers: int) -> None:
    """The driver's MLflow record of the workers' epochs (``<stage>/<metric>``, step = epoch),
    and one log line per epoch."""
    mlflow = mlflow_logger(stage)
    for row in history:
        epoch = int(row["epoch"])
        values = {k: v for k, v in row.items() if k != "epoch"}
        if mlflow is not None:
            mlflow.log_metrics(values, step=epoch - 1)
        losses = " ".join(f"{k.removesuffix('_epoch')}={v:.4g}" for k, v in sorted(values.items()))
        logger.info("%s epoch %d (Ray, %d workers): %s", stage, epoch, workers, losses)
