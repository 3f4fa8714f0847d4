"""The training lifecycle: early stops, stale resume state, epoch lines, devices. (Work-folder
protection, resume equality and damaged checkpoints are in tests/reliability.)"""

import json
import logging
import signal

import mlflow
import pytest
import torch
from toy_training import CtrlCAt, StopAt, fit_toy

from clip_reid.modeling.trainer import (
    RESUME_FILE,
    RESUMED_FROM_TAG,
    StageLogger,
    TrainerSettings,
    TrainingInterrupted,
    resolve_device,
    resume_checkpoint,
)
from clip_reid.settings_base import SettingsError


def test_a_stage_stopped_early_refuses_to_look_finished(tmp_path):
    with pytest.raises(TrainingInterrupted, match="epoch 1 of 4"):
        fit_toy(tmp_path / "w", [StopAt()])


def test_ctrl_c_says_how_to_resume_and_leaves_ctrl_c_working(tmp_path):
    """Lightning answers Ctrl-C with sys.exit after ignoring SIGINT; the stage must instead
    raise its own error (Kedro's error hooks run, the CLI prints it) and restore Ctrl-C."""
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted, match=r"interrupted \(Ctrl-C\) at epoch 2 of 4\. "
                       r"Run the same command again to resume from .*last\.ckpt"):
        fit_toy(tmp_path / "w", [CtrlCAt(2)])
    assert signal.getsignal(signal.SIGINT) is handler
    assert (tmp_path / "w" / RESUME_FILE).is_file()


def test_a_resumed_stage_names_the_run_it_continues(tmp_path, mlflow_tracking, caplog):
    experiment = mlflow.create_experiment("resume", artifact_location=(tmp_path / "a").as_uri())
    with mlflow.start_run(experiment_id=experiment) as first:
        with pytest.raises(TrainingInterrupted):
            fit_toy(tmp_path / "w", [CtrlCAt(2)])
    with mlflow.start_run(experiment_id=experiment) as second:
        with caplog.at_level(logging.INFO, logger="clip_reid.modeling.trainer"):
            fit_toy(tmp_path / "w")
    tags = mlflow.get_run(second.info.run_id).data.tags
    assert tags[RESUMED_FROM_TAG] == first.info.run_id
    assert f"left by MLflow run {first.info.run_id}" in caplog.text


def test_resume_state_from_other_settings_is_discarded(tmp_path):
    work = tmp_path / "work"
    resume_checkpoint(work, {"lr": 0.1})
    (work / RESUME_FILE).write_bytes(b"stale")
    assert resume_checkpoint(work, {"lr": 0.2}) is None
    assert not (work / RESUME_FILE).exists()
    assert json.loads((work / "settings.json").read_text())["settings"] == {"lr": 0.2}


def test_one_plain_line_per_epoch(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="clip_reid.modeling.trainer"):
        fit_toy(tmp_path / "w", epochs=2)
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


def test_mlflow_gets_per_epoch_metrics_only(tmp_path, mlflow_tracking):
    experiment = mlflow.create_experiment("stage", artifact_location=(tmp_path / "a").as_uri())
    with mlflow.start_run(experiment_id=experiment) as run:
        stage = StageLogger(tracking_uri=mlflow.get_tracking_uri(), run_id=run.info.run_id,
                            prefix="toy", log_model=False)
        stage.log_metrics({"epoch": 0.0, "loss_step": 2.0, "loss_epoch": 1.5, "lr": 0.1}, step=3)
        stage.log_metrics({"epoch": 1.0, "loss_step": 1.0}, step=4)  # nothing left to log
    assert sorted(mlflow.get_run(run.info.run_id).data.metrics) == ["toy/loss_epoch", "toy/lr"]
