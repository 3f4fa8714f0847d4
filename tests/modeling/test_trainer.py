import json

import lightning as L
import pytest
import torch

from clip_reid.modeling.trainer import (
    RESUME_FILE,
    TrainerSettings,
    TrainingInterrupted,
    build_trainer,
    raise_if_interrupted,
    resume_checkpoint,
)


class _Toy(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.epochs_started = []

    def on_train_epoch_start(self):
        self.epochs_started.append(self.current_epoch)

    def training_step(self, batch, _):
        return self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _CrashAt(L.Callback):
    """A failure mid-way (out of memory, a lost node…)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("machine lost")


class _StopAt(L.Callback):
    """A graceful early stop (e.g. a time limit) leaves a model that is not fully trained."""

    def on_train_epoch_end(self, trainer, module):
        trainer.should_stop = True


def _loader():
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 2)),
                                       batch_size=4)


def _settings():
    return TrainerSettings(max_epochs=4, accelerator="cpu", enable_progress_bar=False)


def test_interrupted_run_resumes_from_its_last_epoch(tmp_path):
    work = tmp_path / "work"
    settings = {"lr": 0.1}
    assert resume_checkpoint(work, settings) is None
    first = _Toy()
    trainer = build_trainer(_settings(), work, "toy", [_CrashAt(2)])
    with pytest.raises(RuntimeError, match="machine lost"):
        trainer.fit(first, _loader())
    assert (work / RESUME_FILE).is_file()

    resumed = _Toy()
    checkpoint = resume_checkpoint(work, settings)
    assert checkpoint == work / RESUME_FILE
    trainer = build_trainer(_settings(), work, "toy")
    trainer.fit(resumed, _loader(), ckpt_path=checkpoint, weights_only=True)
    raise_if_interrupted(trainer, work)
    assert resumed.epochs_started == [2, 3]


def test_a_stage_stopped_early_refuses_to_look_finished(tmp_path):
    trainer = build_trainer(_settings(), tmp_path, "toy", [_StopAt()])
    trainer.fit(_Toy(), _loader())
    with pytest.raises(TrainingInterrupted, match="epoch 1 of 4"):
        raise_if_interrupted(trainer, tmp_path)


def test_resume_state_from_other_settings_is_discarded(tmp_path):
    work = tmp_path / "work"
    resume_checkpoint(work, {"lr": 0.1})
    (work / RESUME_FILE).write_bytes(b"stale")
    assert resume_checkpoint(work, {"lr": 0.2}) is None
    assert not (work / RESUME_FILE).exists()
    assert json.loads((work / "settings.json").read_text())["settings"] == {"lr": 0.2}


def test_unknown_trainer_parameter_is_refused():
    with pytest.raises(ValueError, match="Unknown trainer parameters \\['gpus'\\]"):
        TrainerSettings.from_params({"max_epochs": 1, "gpus": 2})
