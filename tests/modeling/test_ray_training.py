"""Stages 1 and 2 on Ray Train workers of a two-node loopback cluster, against one process fed
the same global batches with the same seed.

A loss that is a mean over independent samples gives the single-process weights exactly (DDP
averages equal-sized per-worker means). CLIP-ReID's stage 2 does not: its batch-hard triplet
term mines within each worker's batch and BatchNorm normalises with each worker's batch
statistics, and with Adam that moves the weights about as far as another batch order does
(measured: 0.22 vs 0.25, for an update of 0.39). So its single process computes the loss the
way two workers do, on each half of the global batch, averaged: the same gradients, and then
the same weights to float rounding.

An interrupted Ray run (a worker fails at the start of epoch 2 of 2, no retries) is run again with
the same settings: it resumes from Ray Train's checkpoint of epoch 1 and ends at the weights of
the uninterrupted Ray run. Stage 1's SupCon contrasts within a batch, so it is compared the same
way (per-part losses averaged).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import lightning as L
import mlflow
import pandas as pd
import pytest
import torch
from builders import base_parameters
from ctrl_c import interruptible_popen
from ray_cluster import joined_cluster
from torch.utils.data import DataLoader, TensorDataset
from toy_regression import GlobalBatchShares, Regression, regression_rows

from clip_reid.data.image_dataset import ReidImageDataset
from clip_reid.data.samplers import RandomIdentitySampler
from clip_reid.data.splits import select_split
from clip_reid.engine_settings import RayTrainSettings
from clip_reid.modeling import ClipReidModel, ClipSpec
from clip_reid.modeling.backbone import ClipBackbone
from clip_reid.modeling.clip_factory import tokenizer_for
from clip_reid.modeling.encoder_training import (
    EncoderTrainingModule,
    EncoderTrainingSettings,
    train_encoder,
)
from clip_reid.modeling.model_settings import AugmentationSettings, ModelSettings
from clip_reid.modeling.prompt_artifacts import TextFeatures, TrainImageFeatures
from clip_reid.modeling.prompt_learner import PromptLearner
from clip_reid.modeling.prompt_learning import (
    CachedFeatures,
    CachedFeaturesDataModule,
    PromptLearningModule,
    PromptLearningSettings,
    learn_prompts,
)
from clip_reid.modeling.text_encoder import TextEncoder
from clip_reid.modeling.trainer import RESUMED_FROM_TAG, TrainerSettings
from clip_reid.modeling.work_dir import FINGERPRINT_FILE, MARKER_FILE, RAY_RUN_DIR

ray = pytest.importorskip("ray")

GLOBAL_BATCH = 16
WORKERS = 2
NO_CAPTIONS = pd.DataFrame(columns=["path", "pid", "caption", "source"])


@pytest.fixture(scope="module")
def address():
    with joined_cluster() as address:
        yield address


def _trainer(address: str | None) -> TrainerSettings:
    if address is None:
        return TrainerSettings(accelerator="cpu", enable_progress_bar=False)
    return TrainerSettings(accelerator="cpu", enable_progress_bar=False, engine="ray",
                           ray=RayTrainSettings(address=address, num_workers=WORKERS))


def _fit_locally(module: L.LightningModule, loader: DataLoader, epochs: int) -> None:
    L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, deterministic=True, logger=False,
              enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
              use_distributed_sampler=False).fit(module, train_dataloaders=loader)


def test_a_mean_loss_trains_to_the_single_process_weights(address, tmp_path):
    from clip_reid.modeling.ray_training import fit_on_ray

    local = Regression()
    _fit_locally(local, DataLoader(TensorDataset(*regression_rows()), batch_size=8), 3)
    remote = Regression()
    work = tmp_path / "work"
    result = fit_on_ray(remote, GlobalBatchShares(), stage="toy", work_dir=work, max_epochs=3,
                        trainer=_trainer(address), seed=0, fingerprint={"toy": 1})
    assert result.epochs == 3 and result.metrics["loss"] > 0
    assert not work.exists()  # Ray Train's checkpoints and the work folder are gone
    for name, value in local.state_dict().items():
        assert torch.allclose(remote.state_dict()[name], value, atol=1e-6), name
    assert not torch.allclose(remote.layer.weight, torch.full((1, 4), 0.5))  # it did train


CTRL_C_CHILD = """
import sys, time
from pathlib import Path

import lightning as L
import ray
from toy_regression import GlobalBatchShares, Regression

from clip_reid.engine_settings import RayTrainSettings
from clip_reid.modeling.ray_training import fit_on_ray
from clip_reid.modeling.trainer import TrainerSettings

address, work, notes = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])


class SlowSecondEpoch(L.Callback):
    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == 1:
            (notes / f"rank{trainer.global_rank}").touch()
            time.sleep(300)


ray.init(address=address, log_to_driver=False)
fit_on_ray(Regression(), GlobalBatchShares(), stage="toy", work_dir=work, max_epochs=3,
           trainer=TrainerSettings(accelerator="cpu", enable_progress_bar=False, engine="ray",
                                   ray=RayTrainSettings(address=address, num_workers=2)),
           seed=0, fingerprint={"toy": 1}, callbacks=[SlowSecondEpoch()])
"""


def test_ctrl_c_during_a_ray_stage_fails_the_driver_and_the_rerun_resumes(address, tmp_path):
    """Ray Train's own Ctrl-C handler aborts the workers and exits with status 0; the driver
    must fail instead (TrainingInterrupted with the resume advice), keep the finished epoch's
    checkpoint, and a rerun must end at the uninterrupted weights."""
    import signal
    import subprocess
    import sys
    import time

    from clip_reid.modeling.ray_training import RunFolder, fit_on_ray

    work, notes = tmp_path / "work", tmp_path / "notes"
    notes.mkdir()
    child = interruptible_popen([sys.executable, "-c", CTRL_C_CHILD, address, str(work),
                                 str(notes)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
    deadline = time.monotonic() + 240
    while not list(notes.iterdir()) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)  # the workers are in epoch 2, epoch 1's checkpoint is reported
    assert child.poll() is None, child.communicate()[0][-3000:]
    child.send_signal(signal.SIGINT)
    output = child.communicate(timeout=120)[0]
    assert child.returncode != 0, output[-3000:]
    assert "toy on Ray Train was interrupted (Ctrl-C) after epoch 1 of 3" in output, output[-3000:]
    assert "Run the same command again" in output
    assert RunFolder.of(None, work, "toy").last_epoch() == 1

    local = Regression()
    _fit_locally(local, DataLoader(TensorDataset(*regression_rows()), batch_size=8), 3)
    resumed, handler = Regression(), signal.getsignal(signal.SIGINT)
    result = fit_on_ray(resumed, GlobalBatchShares(), stage="toy", work_dir=work, max_epochs=3,
                        trainer=_trainer(address), seed=0, fingerprint={"toy": 1})
    assert result.epochs == 3 and not work.exists()
    for name, value in local.state_dict().items():
        assert torch.allclose(resumed.state_dict()[name], value, atol=1e-6), name
    assert signal.getsignal(signal.SIGINT) is handler  # Ray Train's handler is not left behind


@pytest.fixture(scope="module")
def stage2(tiny_index, tmp_path_factory):
    """Stage 2 of the tiny demo without augmentation randomness: (train split, text features,
    backbone, model settings, stage settings); 2 epochs, global batch 16."""
    params = base_parameters("model", "encoder_training")
    params["model"]["image_size"] = [64, 32]
    model = ModelSettings.from_params(params["model"])
    settings = EncoderTrainingSettings.from_params(params["encoder_training"])
    optimizer = replace(settings.optimizer, warmup_epochs=1, milestones=(1,))
    no_randomness = AugmentationSettings(flip_prob=0.0, padding=0, erasing_prob=0.0)
    settings = replace(settings, batch_size=GLOBAL_BATCH, max_epochs=2, optimizer=optimizer,
                       augmentation=no_randomness,
                       work_dir=str(tmp_path_factory.mktemp("stage2") / "work"))
    text = TextFeatures.of_identities(
        torch.randn(8, 128, generator=torch.Generator().manual_seed(1)))
    backbone = ClipBackbone.of(ClipSpec(**params["model"]["clip"]))
    return select_split(tiny_index, "train"), text, backbone, model, settings


@pytest.fixture(scope="module")
def stage2_on_ray(address, stage2):
    """The uninterrupted 2-worker stage 2 (one Ray run shared by the tests below)."""
    train, text, backbone, model, settings = stage2
    return train_encoder(train, text, backbone, model, settings, _trainer(address), 0)


class _TwoWorkersInOneProcess(EncoderTrainingModule):
    """Loss of each worker's half of the global batch (its own BatchNorm statistics and triplet
    mining), averaged as DDP averages their gradients."""

    def training_step(self, batch, batch_idx):
        share = GLOBAL_BATCH // WORKERS
        halves = [{key: value[rank * share:(rank + 1) * share] for key, value in batch.items()}
                  for rank in range(WORKERS)]
        return sum(super(_TwoWorkersInOneProcess, self).training_step(half, batch_idx)
                   for half in halves) / WORKERS


def _single_process(train, text, backbone, model: ModelSettings,
                    settings: EncoderTrainingSettings, sampler_seed: int):
    """Train on one process; each step's batch is the union of the workers' batches of that
    step (worker r takes P×K batch 2s+r of the plan at step s)."""
    L.seed_everything(0, workers=True, verbose=False)  # as train_encoder: the same initial model
    config = model.reid_config(int(train["label"].max()) + 1, int(train["camid"].max()) + 1)
    module = _TwoWorkersInOneProcess(
        ClipReidModel(config, backbone.clip_model(config.clip)).train(),
        text.features, settings.optimizer, settings.loss)
    initial = {name: value.detach().clone() for name, value in module.model.named_parameters()
               if value.requires_grad}
    sampler = RandomIdentitySampler(train["label"].tolist(), GLOBAL_BATCH // WORKERS,
                                    settings.num_instances, seed=sampler_seed, policy="exact")
    loader = DataLoader(ReidImageDataset(train, model.train_transform(settings.augmentation)),
                        batch_size=GLOBAL_BATCH, sampler=sampler, drop_last=True)
    _fit_locally(module, loader, settings.max_epochs)
    return initial, module.model.state_dict()


def _distance(a: dict, b: dict, names: list[str]) -> float:
    return float(torch.cat([(a[n].float() - b[n].float()).flatten() for n in names]).norm())


def test_stage2_on_two_workers_ends_at_the_single_process_weights(stage2, stage2_on_ray):
    train, text, backbone, model, settings = stage2
    on_ray = stage2_on_ray
    initial, single = _single_process(train, text, backbone, model, settings, sampler_seed=0)
    _, other_order = _single_process(train, text, backbone, model, settings, sampler_seed=1)
    assert on_ray.metadata["epochs"] == 2 and set(on_ray.state_dict) == set(single)
    trained = [name for name, value in initial.items() if not torch.equal(value, single[name])]
    update = _distance(single, initial, trained)
    gap = _distance(on_ray.state_dict, single, trained)
    order_gap = _distance(other_order, single, trained)
    print(f"update {update:.4g}, Ray vs one process {gap:.4g}, other batch order {order_gap:.4g}")
    assert gap < 1e-3 * update and order_gap > 0.1 * update
    assert not Path(settings.work_dir).exists()


class _FailAtEpoch(L.Callback):
    """Runs on the workers: notes each epoch a rank starts (a file in ``notes``); when
    ``epoch`` (0-based) starts, rank 1 fails, as a lost worker would."""

    def __init__(self, notes: Path, epoch: int | None) -> None:
        self.notes, self.epoch = notes, epoch

    def on_train_epoch_start(self, trainer, module):
        (self.notes / f"rank{trainer.global_rank}-epoch{trainer.current_epoch}").touch()
        if trainer.current_epoch == self.epoch and trainer.global_rank == 1:
            raise RuntimeError("power cut on rank 1")


def _started(notes: Path) -> list[str]:
    return sorted(path.name for path in notes.iterdir())


def test_an_interrupted_ray_stage2_resumes_and_ends_at_the_uninterrupted_weights(
        address, stage2, stage2_on_ray, tmp_path, mlflow_tracking):
    from clip_reid.modeling.ray_training import RayStageFailed

    train, text, backbone, model, settings = stage2
    work = tmp_path / "work"
    settings = replace(settings, work_dir=str(work))
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    with mlflow.start_run() as interrupted, pytest.raises(
            RayStageFailed, match="after epoch 1 of 2") as caught:
        train_encoder(train, text, backbone, model, settings, _trainer(address), 0,
                      callbacks=[_FailAtEpoch(first, epoch=1)])
    assert "power cut on rank 1" in str(caught.value)  # the workers' error, named
    assert (work / RAY_RUN_DIR / "epoch_0001").is_dir()
    assert {"rank0-epoch0", "rank1-epoch0", "rank1-epoch1"} <= set(_started(first))

    torch.manual_seed(12345)  # the resumed run must not depend on the state the failure left
    with mlflow.start_run() as rerun:
        resumed = train_encoder(train, text, backbone, model, settings, _trainer(address), 0,
                                callbacks=[_FailAtEpoch(second, epoch=None)])
    assert _started(second) == ["rank0-epoch1", "rank1-epoch1"]  # only the epoch left
    assert resumed.metadata["epochs"] == 2
    assert resumed.state_dict.keys() == stage2_on_ray.state_dict.keys()
    for name, value in stage2_on_ray.state_dict.items():
        assert torch.equal(resumed.state_dict[name], value), name
    run = mlflow.get_run(rerun.info.run_id)
    assert run.data.tags[RESUMED_FROM_TAG] == interrupted.info.run_id
    losses = mlflow.MlflowClient().get_metric_history(rerun.info.run_id,
                                                      "encoder_training/loss_epoch")
    assert [point.step for point in losses] == [0, 1]  # the checkpoint carried epoch 1's
    assert not work.exists()  # Ray Train's checkpoints gone, and the folder it created


def test_a_ray_checkpoint_of_other_settings_is_not_resumed(tmp_path):
    """The driver's check before Ray Train starts: the run folder is kept only for a rerun with
    the interrupted run's settings (Ray Train would otherwise resume from it)."""
    from clip_reid.modeling.ray_training import RunFolder, _resume_or_start_afresh

    work = tmp_path / "work"
    run = RunFolder.of(None, work, "encoder_training")
    _resume_or_start_afresh(work, {"seed": 0}, run)
    assert (work / MARKER_FILE).is_file()
    assert json.loads((work / FINGERPRINT_FILE).read_text())["settings"] == {"seed": 0}
    (work / RAY_RUN_DIR / "epoch_0003").mkdir(parents=True)
    assert run.last_epoch() == 3
    _resume_or_start_afresh(work, {"seed": 0}, run)
    assert run.last_epoch() == 3  # same settings: kept for Ray Train to resume from
    _resume_or_start_afresh(work, {"seed": 1}, run)
    assert run.last_epoch() == 0 and not (work / RAY_RUN_DIR).exists()
    assert json.loads((work / FINGERPRINT_FILE).read_text())["settings"] == {"seed": 1}


def test_a_foreign_work_folder_is_refused_before_ray_starts(tmp_path):
    from clip_reid.modeling.ray_training import RunFolder, _resume_or_start_afresh
    from clip_reid.modeling.work_dir import WorkDirError

    work = tmp_path / "mine"
    work.mkdir()
    (work / "notes.txt").write_text("the user's")
    with pytest.raises(WorkDirError, match="notes.txt"):
        _resume_or_start_afresh(work, {}, RunFolder.of(None, work, "encoder_training"))
    assert sorted(path.name for path in work.iterdir()) == ["notes.txt"]


class _PromptHalvesInOneProcess(PromptLearningModule):
    """Stage 1's loss on each worker's part of the global batch (RankShare's cut), averaged as
    DDP averages the workers' gradients; a batch too small to cut is skipped, as on Ray."""

    def training_step(self, batch, batch_idx):
        if len(batch[1]) < WORKERS:
            return None
        parts = zip(*(column.tensor_split(WORKERS) for column in batch), strict=True)
        return sum(super(_PromptHalvesInOneProcess, self).training_step(part, batch_idx)
                   for part in parts) / WORKERS


def _stage1_single_process(features, backbone, model, settings, sampler_seed: int):
    """learn_prompts' model on one process, fed the global batches, per-part losses."""
    L.seed_everything(0, workers=True, verbose=False)  # as learn_prompts: the same context
    clip = backbone.clip_model(model.clip)
    text_encoder = TextEncoder(clip, tokenizer_for(model.clip.arch))
    learner = PromptLearner(features.num_classes, text_encoder, settings.n_ctx,
                            settings.class_word)
    module = _PromptHalvesInOneProcess(learner, text_encoder, settings.optimizer,
                                       settings.max_epochs, settings.caption_mode)
    initial = {name: value.detach().clone() for name, value in learner.state_dict().items()}
    data = CachedFeaturesDataModule(CachedFeatures(features.features, features.labels, None),
                                    settings, sampler_seed)
    _fit_locally(module.train(), data.train_dataloader(), settings.max_epochs)
    return initial, learner.state_dict()


@pytest.fixture(scope="module")
def stage1(tiny_index, tmp_path_factory):
    """Stage 1 of the tiny demo on fixed random features: (features, backbone, model settings,
    stage settings); 2 epochs of global batch 12 (64 images: the last batch of 4 splits 2 + 2)."""
    params = base_parameters("model", "prompt_learning")
    params["model"]["image_size"] = [64, 32]
    model = ModelSettings.from_params(params["model"])
    settings = PromptLearningSettings.from_params(
        {**params["prompt_learning"], "max_epochs": 2, "batch_size": 12,
         "work_dir": str(tmp_path_factory.mktemp("stage1") / "work")}).for_layout("demo")
    settings = replace(settings, optimizer=replace(settings.optimizer, warmup_epochs=0))
    train = select_split(tiny_index, "train")
    features = TrainImageFeatures(
        torch.nn.functional.normalize(torch.randn(len(train), 128,
                                                  generator=torch.Generator().manual_seed(2))),
        torch.tensor(train["label"].to_numpy()), tuple(train["path"]))
    backbone = ClipBackbone.of(ClipSpec(**params["model"]["clip"]))
    return features, backbone, model, settings


@pytest.fixture(scope="module")
def stage1_on_ray(address, stage1):
    """The uninterrupted 2-worker stage 1 (one Ray run shared by the tests below)."""
    features, backbone, model, settings = stage1
    return learn_prompts(features, NO_CAPTIONS, backbone, model, settings, _trainer(address), 0)


def test_stage1_on_two_workers_ends_at_the_single_process_weights(stage1, stage1_on_ray):
    """Stage 1 (prompt learning) through the same Ray path: each worker takes its part of
    every shuffled global batch. SupCon contrasts within a batch, so (as in stage 2) the
    comparison is one process averaging the per-part losses."""
    features, backbone, model, settings = stage1
    checkpoint, text = stage1_on_ray
    initial, single = _stage1_single_process(features, backbone, model, settings, 0)
    _, other_order = _stage1_single_process(features, backbone, model, settings, 1)
    update = _distance(single, initial, ["ctx"])
    gap = _distance(dict(checkpoint.state_dict), single, ["ctx"])
    order_gap = _distance(other_order, single, ["ctx"])
    print(f"stage 1 ({len(features.labels)} images, batch {settings.batch_size}): update "
          f"{update:.4g}, Ray vs one process {gap:.4g}, other batch order {order_gap:.4g}")
    assert set(checkpoint.state_dict) == set(single)
    assert gap < 1e-3 * update and order_gap > 0.1 * update
    assert text.features.shape[0] == features.num_classes
    assert not Path(settings.work_dir).exists()


def test_an_interrupted_ray_stage1_resumes_and_ends_at_the_uninterrupted_weights(
        address, stage1, stage1_on_ray, tmp_path, mlflow_tracking):
    """Stage 1's resume restores what stage 2's does not have: the shuffling generator of its
    cached-feature batches, so the resumed epoch draws the uninterrupted run's batches."""
    from clip_reid.modeling.ray_training import RayStageFailed

    features, backbone, model, settings = stage1
    work = tmp_path / "work"
    settings = replace(settings, work_dir=str(work))
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    with mlflow.start_run() as interrupted, pytest.raises(
            RayStageFailed, match="after epoch 1 of 2"):
        learn_prompts(features, NO_CAPTIONS, backbone, model, settings, _trainer(address), 0,
                      callbacks=[_FailAtEpoch(first, epoch=1)])
    assert (work / RAY_RUN_DIR / "epoch_0001").is_dir()

    torch.manual_seed(12345)  # the resumed run must not depend on the state the failure left
    with mlflow.start_run() as rerun:
        checkpoint, text = learn_prompts(features, NO_CAPTIONS, backbone, model, settings,
                                         _trainer(address), 0,
                                         callbacks=[_FailAtEpoch(second, epoch=None)])
    assert _started(second) == ["rank0-epoch1", "rank1-epoch1"]  # only the epoch left
    uninterrupted, uninterrupted_text = stage1_on_ray
    assert checkpoint.state_dict.keys() == uninterrupted.state_dict.keys()
    for name, value in uninterrupted.state_dict.items():
        assert torch.equal(checkpoint.state_dict[name], value), name
    assert torch.equal(text.features, uninterrupted_text.features)
    assert mlflow.get_run(rerun.info.run_id).data.tags[RESUMED_FROM_TAG] == \
        interrupted.info.run_id
    losses = mlflow.MlflowClient().get_metric_history(rerun.info.run_id, "prompt_learning/loss")
    assert sorted({point.step for point in losses}) == [0, 1]
    assert not work.exists()
