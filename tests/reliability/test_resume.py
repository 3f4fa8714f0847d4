"""Resume reproduces: a stage killed mid-way and run again with the same command ends
with exactly the weights of a run that was never interrupted (state_dict equality), for the
training loop itself and for stage 1 (prompt learning) and stage 2 (encoder training)."""

import json
import signal
import subprocess
import time
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
import torch
from kedro_project import copy_project, kedro, kedro_command, kedro_env, output
from toy_training import CrashAt, fit_toy

from clip_reid.data.splits import select_split
from clip_reid.modeling import ClipSpec
from clip_reid.modeling.backbone import ClipBackbone
from clip_reid.modeling.encoder_training import EncoderTrainingSettings, train_encoder
from clip_reid.modeling.model_settings import ModelSettings
from clip_reid.modeling.prompt_artifacts import TextFeatures
from clip_reid.modeling.prompt_learning import (
    PromptLearningSettings,
    cache_train_features,
    learn_prompts,
)
from clip_reid.modeling.trainer import TrainerSettings
from clip_reid.modeling.work_dir import RESUME_FILE

NO_CAPTIONS = pd.DataFrame(columns=["path", "pid", "caption", "source"])


def _assert_same_weights(straight: dict, resumed: dict) -> None:
    assert straight.keys() == resumed.keys()
    for name, value in straight.items():
        assert torch.equal(value, resumed[name]), name


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    torch.manual_seed(123)
    straight, result = fit_toy(tmp_path / "a")
    assert result.epochs == 4 and "loss" in result.metrics

    torch.manual_seed(123)
    with pytest.raises(RuntimeError, match="machine lost"):
        fit_toy(tmp_path / "b", [CrashAt(2)])
    assert (tmp_path / "b" / RESUME_FILE).is_file()
    torch.manual_seed(999)  # whatever happened in between, the checkpoint's state wins
    resumed, _ = fit_toy(tmp_path / "b")
    assert resumed.epochs_started == [2, 3]
    _assert_same_weights(straight.state_dict(), resumed.state_dict())
    assert not (tmp_path / "b").exists()  # a finished stage leaves nothing behind


class _CrashAtEpoch(L.Callback):
    """A power cut when ``epoch`` starts (once ``armed``); records the epochs started."""

    def __init__(self, epoch):
        self.epoch, self.started, self.armed = epoch, [], True

    def on_train_epoch_start(self, trainer, module):
        self.started.append(trainer.current_epoch)
        if self.armed and trainer.current_epoch == self.epoch:
            raise RuntimeError("power cut")


def _settings(params):
    return (ModelSettings.from_params(params["model"]),
            TrainerSettings.from_params(params["trainer"]))


def _backbone(params):
    return ClipBackbone.of(ClipSpec(**params["model"]["clip"]))


def test_resumed_encoder_training_equals_an_uninterrupted_run(tiny_index, tiny_params, tmp_path):
    """Stage 2: a crash after epoch 2 of 3, a rerun: same epochs, same final weights."""
    model, trainer = _settings(tiny_params)
    tiny_params["encoder_training"]["max_epochs"] = 3
    train = select_split(tiny_index, "train")
    text = TextFeatures.of_identities(
        torch.randn(8, 128, generator=torch.Generator().manual_seed(1)))
    backbone = _backbone(tiny_params)

    def run(work, callbacks=()):
        settings = EncoderTrainingSettings.from_params(
            {**tiny_params["encoder_training"], "work_dir": str(work)})
        return train_encoder(train, text, backbone, model, settings, trainer, 0, callbacks)

    straight = run(tmp_path / "straight")
    crash = _CrashAtEpoch(2)
    with pytest.raises(RuntimeError, match="power cut"):
        run(tmp_path / "resumed", [crash])
    assert (tmp_path / "resumed" / RESUME_FILE).is_file()
    crash.armed = False
    torch.manual_seed(12345)  # the resumed run must not depend on the state the crash left
    resumed = run(tmp_path / "resumed", [crash])
    assert crash.started == [0, 1, 2, 2] and resumed.metadata["epochs"] == 3
    _assert_same_weights(straight.state_dict, resumed.state_dict)


def test_resumed_prompt_learning_equals_an_uninterrupted_run(tiny_index, tiny_params, tmp_path):
    """Stage 1: a crash after epoch 1 of 3; the learned context and the identities' text
    features equal the uninterrupted run's."""
    model, trainer = _settings(tiny_params)
    tiny_params["prompt_learning"]["max_epochs"] = 3
    backbone = _backbone(tiny_params)
    stage1 = PromptLearningSettings.from_params(tiny_params["prompt_learning"]).for_layout("demo")
    features = cache_train_features(select_split(tiny_index, "train"), backbone, model, stage1,
                                    torch.device("cpu"), 0)

    def run(work, callbacks=()):
        settings = PromptLearningSettings.from_params(
            {**tiny_params["prompt_learning"], "work_dir": str(work)}).for_layout("demo")
        return learn_prompts(features, NO_CAPTIONS, backbone, model, settings, trainer, 0,
                             callbacks)

    straight, straight_text = run(tmp_path / "straight")
    crash = _CrashAtEpoch(1)
    with pytest.raises(RuntimeError, match="power cut"):
        run(tmp_path / "resumed", [crash])
    crash.armed = False
    torch.manual_seed(12345)
    resumed, resumed_text = run(tmp_path / "resumed", [crash])
    assert crash.started == [0, 1, 1, 2]
    _assert_same_weights(straight.state_dict, resumed.state_dict)
    assert torch.equal(straight_text.features, resumed_text.features)


def _newest(project: Path, dataset: str, name: str) -> Path:
    return sorted((project / "data" / dataset).glob(f"*/{name}"))[-1]


def test_the_full_pipeline_killed_in_stage_2_and_run_again_matches_an_uninterrupted_run(
        tmp_path):
    """End to end on the tiny demo: `kedro run --pipelines full` SIGKILLed during
    encoder_training and run again with the same command (stages before it run again, stage 2
    resumes from its last.ckpt) ends with the reid_model tensors and evaluation metrics of an
    uninterrupted run (same thread count). The full demo: README "Resuming the whole
    pipeline"."""
    command = ("run", "--pipelines", "full", "--env", "e2e", "--params",
               "encoder_training.max_epochs=6")
    (tmp_path / "straight").mkdir()
    (tmp_path / "resumed").mkdir()
    straight, resumed = copy_project(tmp_path / "straight"), copy_project(tmp_path / "resumed")
    first = kedro(straight, *command)
    assert first.returncode == 0, output(first)[-3000:]
    killed = subprocess.Popen(kedro_command(*command), cwd=resumed, env=kedro_env(resumed),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    progress = resumed / "data/06_models/work/encoder_training/progress.json"
    deadline = time.monotonic() + 900
    while not (progress.is_file() and progress.read_text()
               and json.loads(progress.read_text())["epochs_completed"] >= 2):
        assert killed.poll() is None and time.monotonic() < deadline, "stage 2 never reached"
        time.sleep(0.05)
    killed.kill()  # SIGKILL: no clean-up of any kind
    assert killed.wait() == -signal.SIGKILL
    assert json.loads(progress.read_text())["epochs_completed"] < 6
    again = kedro(resumed, *command)
    assert again.returncode == 0, output(again)[-3000:]
    assert "Resuming from" in " ".join(output(again).split())
    for project in (straight, resumed):
        assert not (project / "data/06_models/work/encoder_training").exists()
    _assert_same_weights(
        torch.load(_newest(straight, "06_models/reid_model.pt", "reid_model.pt"),
                   weights_only=True)["state_dict"],
        torch.load(_newest(resumed, "06_models/reid_model.pt", "reid_model.pt"),
                   weights_only=True)["state_dict"])
    metrics = [json.loads(_newest(p, "08_reporting/evaluation_metrics.json",
                                  "evaluation_metrics.json").read_text())
               for p in (straight, resumed)]
    assert metrics[0] == metrics[1]
