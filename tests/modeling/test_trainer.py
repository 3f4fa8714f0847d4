import json
import logging

import lightning as L
import pytest
import torch

from clip_reid.modeling.trainer import (
    MARKER_FILE,
    RESUME_FILE,
    TrainerSettings,
    TrainingInterrupted,
    WorkDirError,
    build_trainer,
    fit_resumable,
    raise_if_interrupted,
    resolve_device,
    resume_checkpoint,
)
from clip_reid.settings_base import SettingsError


class _Toy(L.LightningModule):
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
    generator = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(8, 2, generator=generator))
    return torch.utils.data.DataLoader(data, batch_size=4, shuffle=True, generator=generator)


def _settings():
    return TrainerSettings(accelerator="cpu", enable_progress_bar=False)


def _fit(work, callbacks=(), epochs=4):
    module, loader = _Toy(), _loader()
    result = fit_resumable(module, loader, stage="toy", work_dir=work, max_epochs=epochs,
                           trainer=_settings(), fingerprint={"lr": 0.1},
                           generators=[loader.generator], callbacks=callbacks)
    return module, result


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    torch.manual_seed(123)
    straight, result = _fit(tmp_path / "a")
    assert result.epochs == 4 and "loss" in result.metrics

    torch.manual_seed(123)
    with pytest.raises(RuntimeError, match="machine lost"):
        _fit(tmp_path / "b", [_CrashAt(2)])
    assert (tmp_path / "b" / RESUME_FILE).is_file()
    torch.manual_seed(999)  # whatever happened in between, the checkpoint's state wins
    resumed, _ = _fit(tmp_path / "b")
    assert resumed.epochs_started == [2, 3]
    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    assert not (tmp_path / "b").exists()  # a finished stage leaves nothing behind


def test_a_stage_stopped_early_refuses_to_look_finished(tmp_path):
    with pytest.raises(TrainingInterrupted, match="epoch 1 of 4"):
        _fit(tmp_path / "w", [_StopAt()])


def test_zero_epochs_never_counts_as_finished(tmp_path):
    trainer = build_trainer(_settings(), 0, tmp_path, "toy")
    trainer.fit(_Toy(), _loader())
    with pytest.raises(TrainingInterrupted, match="epoch 0 of 0"):
        raise_if_interrupted(trainer, tmp_path)


def test_resume_state_from_other_settings_is_discarded(tmp_path):
    work = tmp_path / "work"
    resume_checkpoint(work, {"lr": 0.1})
    (work / RESUME_FILE).write_bytes(b"stale")
    assert resume_checkpoint(work, {"lr": 0.2}) is None
    assert not (work / RESUME_FILE).exists()
    assert json.loads((work / "settings.json").read_text())["settings"] == {"lr": 0.2}


def test_a_folder_the_project_did_not_create_is_refused_and_kept(tmp_path):
    mine = tmp_path / "models"
    mine.mkdir()
    (mine / "precious.pt").write_bytes(b"weights")
    with pytest.raises(WorkDirError, match="not created by clip-reid"):
        _fit(mine)
    assert (mine / "precious.pt").read_bytes() == b"weights"
    assert not (mine / MARKER_FILE).exists()


def test_clean_up_removes_only_the_project_files(tmp_path):
    work = tmp_path / "work"
    resume_checkpoint(work, {"lr": 0.1})
    (work / "notes.txt").write_text("added by the user later")
    _fit(work)
    assert sorted(p.name for p in work.iterdir()) == ["notes.txt"]


def test_an_unreadable_checkpoint_is_moved_aside_and_the_stage_starts_afresh(tmp_path, caplog):
    work = tmp_path / "work"
    resume_checkpoint(work, {"lr": 0.1})
    (work / RESUME_FILE).write_bytes(b"truncated by a full disk")
    with caplog.at_level(logging.WARNING, logger="clip_reid.modeling.trainer"):
        module, result = _fit(work)
    assert module.epochs_started == [0, 1, 2, 3] and result.epochs == 4
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "starting this stage afresh" in warnings[0].getMessage()
    aside = [p.name for p in work.iterdir()]
    assert len(aside) == 1 and aside[0].startswith(f"{RESUME_FILE}.unreadable-")


def test_one_plain_line_per_epoch(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="clip_reid.modeling.trainer"):
        _fit(tmp_path / "w", epochs=2)
    lines = [r.getMessage() for r in caplog.records if " epoch " in r.getMessage()]
    assert len(lines) == 2
    assert lines[0].startswith("toy epoch 1/2: loss=") and "lr=0.1 " in lines[0]
    assert "lr=0.05 " in lines[1] and lines[1].endswith("ETA 0:00:00")
    assert "s/epoch" in lines[1]


def test_unknown_trainer_parameter_is_refused():
    with pytest.raises(SettingsError, match="Unknown parameter trainer.gpus"):
        TrainerSettings.from_params({"gpus": 2}, "trainer")


def test_device_follows_the_trainer_or_an_explicit_choice():
    assert resolve_device(TrainerSettings(accelerator="cpu")) == torch.device("cpu")
    assert resolve_device(TrainerSettings(accelerator="gpu")) == torch.device("cuda")
    assert resolve_device(TrainerSettings(accelerator="gpu"), "cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(TrainerSettings()).type == expected
