"""A toy Lightning stage trained through ``fit_resumable``, shared by the trainer unit tests and
the fault suite (resume, work folders, damaged checkpoints)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch

from clip_reid.modeling.trainer import FitResult, TrainerSettings, fit_resumable


class Toy(L.LightningModule):
    """Random in every step (dropout) and fed by a shuffled loader: resume must replay both."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.layer = torch.nn.Linear(2, 1)
        self.epochs_started = []

    def on_train_epoch_start(self):
        self.epochs_started.append(self.current_epoch)

    def training_step(self, batch, _):
        x = torch.nn.functional.dropout(batch[0], 0.5)
        loss = self.layer(x).pow(2).mean()
        self.log("loss", loss, on_step=False, on_epoch=True)
        return loss

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=0.1)
        schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule,
                                                         "interval": "epoch"}}


class CrashAt(L.Callback):
    """A failure mid-way (out of memory, a lost node…) when ``epoch`` starts."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("machine lost")


class CtrlCAt(L.Callback):
    """The user presses Ctrl-C when ``epoch`` starts (Python raises KeyboardInterrupt)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == self.epoch:
            raise KeyboardInterrupt


class StopAt(L.Callback):
    """A graceful early stop (e.g. a time limit) leaves a model that is not fully trained."""

    def on_train_epoch_end(self, trainer, module):
        trainer.should_stop = True


FINGERPRINT = {"lr": 0.1}


def toy_loader() -> torch.utils.data.DataLoader:
    generator = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(8, 2, generator=generator))
    return torch.utils.data.DataLoader(data, batch_size=4, shuffle=True, generator=generator)


def toy_settings() -> TrainerSettings:
    return TrainerSettings(accelerator="cpu", enable_progress_bar=False, log_every_n_steps=2)


def fit_toy(work: Path, callbacks: Sequence[L.Callback] = (), epochs: int = 4
            ) -> tuple[Toy, FitResult]:
    """Train a fresh Toy for ``epochs`` in ``work`` (resuming what an earlier call left)."""
    module, loader = Toy(), toy_loader()
    result = fit_resumable(module, loader, stage="toy", work_dir=work, max_epochs=epochs,
                           trainer=toy_settings(), fingerprint=FINGERPRINT,
                           generators=[loader.generator], callbacks=callbacks)
    return module, result
