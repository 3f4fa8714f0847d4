"""Stage 2 of CLIP-ReID: fine-tune the image encoder with ID, triplet and image-to-text losses.

The text features of all identities (from stage 1) are fixed; the image projection of each
training image is classified against them (the i2t term), next to the usual ReID losses.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader

from clip_reid.data.image_dataset import ReidImageDataset
from clip_reid.data.samplers import RandomIdentitySampler
from clip_reid.engine_settings import worker_batch_size
from clip_reid.modeling.backbone import ClipBackbone
from clip_reid.modeling.caption_alignment import image_caption_features
from clip_reid.modeling.clip_factory import tokenizer_for
from clip_reid.modeling.losses import (
    EncoderLossWeights,
    encoder_training_loss,
    symmetric_contrastive_loss,
)
from clip_reid.modeling.model_settings import AugmentationSettings, ModelSettings
from clip_reid.modeling.prompt_artifacts import TextFeatures
from clip_reid.modeling.reid_checkpoint import ReidCheckpoint
from clip_reid.modeling.reid_model import ClipReidModel
from clip_reid.modeling.schedules import warmup_multistep
from clip_reid.modeling.text_encoder import TextEncoder
from clip_reid.modeling.trainer import TrainerSettings, fit_resumable
from clip_reid.settings_base import Settings, setting

logger = logging.getLogger(__name__)

STAGE = "encoder_training"


@dataclass(frozen=True)
class EncoderOptimizer(Settings):
    """Adam with bias LR ×2, linear warm-up then step decay (per epoch); RN50 defaults.

    ``tower_lr_factor`` scales the rate of the image tower's own parameters (pretrained weights)
    against the layers new to ReID (necks, classifiers, a CNN tower's projection, SIE): below 1
    fine-tunes a pretrained tower gently while the new layers learn at ``base_lr``.
    """

    base_lr: float = setting(3.5e-4, gt=0.0)
    tower_lr_factor: float = setting(1.0, gt=0.0)
    weight_decay: float = setting(5e-4, ge=0.0)
    weight_decay_bias: float = setting(5e-4, ge=0.0)
    bias_lr_factor: float = setting(2.0, gt=0.0)
    warmup_epochs: int = setting(10, ge=0)
    warmup_factor: float = setting(0.01, gt=0.0, le=1.0)
    milestones: tuple[int, ...] = setting((40, 70), ge=1)
    gamma: float = setting(0.1, gt=0.0)


@dataclass(frozen=True)
class EncoderLoss(Settings):
    """The stage-2 loss: term weights, label smoothing (ID and i2t) and the triplet margin."""

    weights: EncoderLossWeights = setting(default_factory=EncoderLossWeights)
    label_smoothing: float = setting(0.1, ge=0.0, lt=1.0)
    triplet_margin: float = setting(0.3, ge=0.0)
    caption_temperature: float = setting(0.07, gt=0.0)  # of the optional caption term


@dataclass(frozen=True)
class EncoderTrainingSettings(Settings):
    """The `encoder_training` block (stage 2); the paper's RN50 values by default."""

    max_epochs: int = setting(120, ge=1)
    batch_size: int = setting(64, ge=1)  # P x K
    num_instances: int = setting(4, ge=1)  # K
    # "exact": every epoch the same maximum number of batches (needed to split them over DDP
    # ranks); "official": CLIP-ReID's draw, P identities among those with chunks left.
    sampler: str = setting("exact", choices=("exact", "official"))
    augmentation: AugmentationSettings = setting(default_factory=AugmentationSettings)
    optimizer: EncoderOptimizer = setting(default_factory=EncoderOptimizer)
    loss: EncoderLoss = setting(default_factory=EncoderLoss)
    work_dir: str = "data/06_models/work/encoder_training"  # resumable state of a stopped run

    def __post_init__(self) -> None:
        if self.batch_size % self.num_instances:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of "
                             f"num_instances ({self.num_instances}): a batch is P x K images.")


class EncoderTrainingModule(L.LightningModule):
    """Trains a ClipReidModel; logs the loss terms, i2t accuracy and (via a callback) the LR."""

    def __init__(
        self, model: ClipReidModel, text_features: Tensor, optim: EncoderOptimizer,
        loss: EncoderLoss, use_cameras: bool = False,
        caption_features: tuple[Tensor, Tensor] | None = None,
    ) -> None:
        """``caption_features``: (per training-image caption feature, has-caption mask), rows
        in training-index order; needed when the caption loss weight is positive."""
        super().__init__()
        self.model = model
        self.register_buffer("text_features", text_features.detach().float().clone())
        self.optim = optim
        self.loss = loss
        self.use_cameras = use_cameras
        if loss.weights.caption > 0 and caption_features is None:
            raise ValueError("encoder_training.loss.weights.caption > 0 needs the training "
                             "images' caption features.")
        self.caption_features = caption_features

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        labels = batch["label"]
        output = self.model(batch["image"], batch["camid"] if self.use_cameras else None)
        i2t_logits = output.image_projection @ self.text_features.T
        losses = encoder_training_loss(
            output.logits, output.features, i2t_logits, labels, self.loss.weights,
            self.loss.label_smoothing, self.loss.triplet_margin,
        )
        if self.loss.weights.caption > 0:
            caption = self._caption_loss(output.image_projection, labels, batch["index"])
            losses["caption_loss"] = caption
            losses["loss"] = losses["loss"] + self.loss.weights.caption * caption
        accuracy = (i2t_logits.argmax(1) == labels).float().mean()
        logged = {name: value.detach() for name, value in losses.items()} | {"i2t_acc": accuracy}
        self.log_dict(logged, on_step=True, on_epoch=True, sync_dist=True, batch_size=len(labels))
        self.log("loss_epoch", losses["loss"].detach(), on_step=False, on_epoch=True,
                 prog_bar=True, sync_dist=True, batch_size=len(labels), logger=False)
        return losses["loss"]

    def _caption_loss(self, projection: Tensor, labels: Tensor, rows: Tensor) -> Tensor:
        features, has_caption = self.caption_features
        rows = rows.cpu()
        keep = has_caption[rows]
        if not keep.any():
            return projection.sum() * 0.0  # no captioned image in this batch
        targets = features[rows[keep]].to(projection.device, projection.dtype)
        mask = keep.to(projection.device)
        return symmetric_contrastive_loss(projection[mask], targets, labels[mask],
                                          self.loss.caption_temperature)

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(encoder_param_groups(self.model, self.optim))

        def multiplier(completed_epochs: int) -> float:
            return warmup_multistep(
                completed_epochs + 1, self.optim.warmup_epochs, self.optim.warmup_factor,
                self.optim.milestones, self.optim.gamma,
            )

        scheduler = {"scheduler": LambdaLR(optimizer, multiplier), "interval": "epoch"}
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


def encoder_param_groups(model: ClipReidModel, optim: EncoderOptimizer) -> list[dict[str, Any]]:
    """Adam groups: new layers' weights first (its rate is the one logged), then their biases,
    then the image tower's weights and biases at ``tower_lr_factor`` times those rates."""
    encoder = model.image_encoder
    tower = {f"image_encoder.{name}" for name, _ in encoder.named_parameters()
             if encoder.is_pretrained_parameter(name)}
    members: dict[str, list[torch.nn.Parameter]] = {
        "weights": [], "biases": [], "tower_weights": [], "tower_biases": []}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            kind = "biases" if name.endswith("bias") else "weights"
            members[f"tower_{kind}" if name in tower else kind].append(parameter)
    groups = []
    for group, params in members.items():
        lr = optim.base_lr * (optim.bias_lr_factor if group.endswith("biases") else 1.0)
        lr *= optim.tower_lr_factor if group.startswith("tower") else 1.0
        decay = optim.weight_decay_bias if group.endswith("biases") else optim.weight_decay
        if params:
            groups.append({"name": group, "params": params, "lr": lr, "weight_decay": decay})
    return groups


class IdentityBatchDataModule(L.LightningDataModule):
    """P×K identity batches of the training split; each DDP rank gets whole batches.

    ``sampler`` is the identity-picking policy of ``RandomIdentitySampler``: ``"exact"`` or the
    official CLIP-ReID ``"official"`` (single device).
    """

    def __init__(
        self, train_index: pd.DataFrame, transform, batch_size: int, num_instances: int,
        seed: int, num_workers: int, sampler: str,
    ) -> None:
        super().__init__()
        self.train_index = train_index.reset_index(drop=True)
        self.transform = transform
        self.batch_size = batch_size
        self.num_instances = num_instances
        self.seed = seed
        self.num_workers = num_workers
        self.sampler = sampler

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        sampler = RandomIdentitySampler(
            self.train_index["label"].tolist(), self.batch_size, self.num_instances, seed=self.seed,
            num_replicas=trainer.world_size if trainer else 1,
            rank=trainer.global_rank if trainer else 0, policy=self.sampler,
        )
        return DataLoader(
            ReidImageDataset(self.train_index, self.transform), batch_size=self.batch_size,
            sampler=sampler, drop_last=True, num_workers=self.num_workers,
            # Fresh workers each epoch, seeded from the (checkpointed) main random state: a
            # resumed run then augments exactly as an uninterrupted one.
            persistent_workers=False,
        )


def train_encoder(
    train: pd.DataFrame, text_features: TextFeatures, clip_backbone: ClipBackbone,
    model: ModelSettings, settings: EncoderTrainingSettings, trainer: TrainerSettings, seed: int,
    callbacks: Sequence[Callback] = (), image_captions: pd.DataFrame | None = None,
) -> ReidCheckpoint:
    """Stage 2: fine-tune the CLIP image encoder of ``clip_backbone`` on the training split
    against the stage-1 ``text_features``; return a self-describing checkpoint (with CLIP's
    text tower, for text queries). ``image_captions`` feed the optional caption term."""
    L.seed_everything(seed, workers=True, verbose=False)
    features = text_features.features
    num_classes = int(train["label"].max()) + 1
    if features.shape[0] != num_classes:
        raise ValueError(
            f"text_features has {features.shape[0]} identities but the training split has "
            f"{num_classes}: re-run prompt_learning on this image_index."
        )
    config = model.reid_config(num_classes, int(train["camid"].max()) + 1)
    clip = clip_backbone.clip_model(config.clip)
    reid_model = ClipReidModel(config, clip).train()
    captions = None
    if settings.loss.weights.caption > 0:
        captions = training_caption_features(clip, config.clip.arch, train, image_captions)
    module = EncoderTrainingModule(reid_model, features, settings.optimizer, settings.loss,
                                   use_cameras=config.num_cameras > 0, caption_features=captions)
    batch_size = settings.batch_size
    if trainer.engine == "ray":
        batch_size = worker_batch_size(batch_size, settings.num_instances, trainer.ray.num_workers)
    data = IdentityBatchDataModule(train, model.train_transform(settings.augmentation),
                                   batch_size, settings.num_instances, seed,
                                   trainer.num_workers, settings.sampler)
    fingerprint = {"model": model.to_dict(), STAGE: settings.to_dict(),
                   "trainer": trainer.to_dict(), "seed": seed, "num_images": len(train),
                   "num_classes": num_classes,
                   "text_features_sum": float(features.double().sum())}
    if trainer.engine == "ray":
        from clip_reid.modeling.ray_training import fit_on_ray

        result = fit_on_ray(module, data, stage=STAGE, work_dir=Path(settings.work_dir),
                            max_epochs=settings.max_epochs, trainer=trainer, seed=seed,
                            fingerprint=fingerprint, callbacks=callbacks)
    else:
        result = fit_resumable(module, data, stage=STAGE, work_dir=Path(settings.work_dir),
                               max_epochs=settings.max_epochs, trainer=trainer,
                               fingerprint=fingerprint, callbacks=callbacks)
    mean, std = model.normalization()
    return ReidCheckpoint.from_model(module.model.eval(), {"mean": mean, "std": std},
                                     text_tower=clip, final_metrics=result.metrics,
                                     epochs=result.epochs)


def training_caption_features(clip, arch: str, train: pd.DataFrame,
                              image_captions: pd.DataFrame | None) -> tuple[Tensor, Tensor]:
    """Training images' caption features (training captions only: no test text leaks in)."""
    if image_captions is None:
        image_captions = pd.DataFrame(columns=["path", "caption"])
    features, has_caption = image_caption_features(
        TextEncoder(clip, tokenizer_for(arch)).eval(), train["path"].tolist(), image_captions)
    if not has_caption.any():
        raise ValueError(
            "encoder_training.loss.weights.caption > 0 but no training image has a caption: "
            "configure captions.sources, or set the caption weight to 0."
        )
    logger.info("Caption alignment: %d of %d training images have captions.",
                int(has_caption.sum()), len(train))
    return features, has_caption
