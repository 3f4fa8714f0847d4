"""Stage 2 of CLIP-ReID: fine-tune the image encoder with ID, triplet and image-to-text losses.

The text features of all identities (from stage 1) are fixed; the image projection of each
training image is classified against them (the i2t term), next to the usual ReID losses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import lightning as L
import pandas as pd
import torch
from torch import Tensor
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader

from clip_reid.data.image_dataset import ReidImageDataset
from clip_reid.data.samplers import RandomIdentitySampler
from clip_reid.modeling.caption_alignment import caption_alignment_loss
from clip_reid.modeling.losses import Stage2LossWeights, encoder_training_loss
from clip_reid.modeling.reid_model import ClipReidModel
from clip_reid.modeling.schedules import warmup_multistep


@dataclass(frozen=True)
class Stage2Optimisation:
    """Adam with bias LR ×2, linear warm-up then step decay (per epoch); RN50 defaults."""

    base_lr: float = 3.5e-4
    weight_decay: float = 5e-4
    weight_decay_bias: float = 5e-4
    bias_lr_factor: float = 2.0
    warmup_epochs: int = 10
    warmup_factor: float = 0.01
    milestones: Sequence[int] = (40, 70)
    gamma: float = 0.1
    label_smoothing: float = 0.1
    triplet_margin: float = 0.3
    caption_temperature: float = 0.07
    loss_weights: Stage2LossWeights = field(default_factory=Stage2LossWeights)


class EncoderTrainingModule(L.LightningModule):
    """Trains a ClipReidModel; logs the loss terms, i2t accuracy and (via a callback) the LR."""

    def __init__(
        self, model: ClipReidModel, text_features: Tensor, optim: Stage2Optimisation,
        use_cameras: bool = False, caption_features: tuple[Tensor, Tensor] | None = None,
    ) -> None:
        """``caption_features``: (per training-image caption feature, has-caption mask), rows
        in training-index order; needed when the caption loss weight is positive."""
        super().__init__()
        self.model = model
        self.register_buffer("text_features", text_features.detach().float().clone())
        self.optim = optim
        self.use_cameras = use_cameras
        if optim.loss_weights.caption > 0 and caption_features is None:
            raise ValueError("loss_weights.caption > 0 needs the training images' caption "
                             "features.")
        self.caption_features = caption_features

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        labels = batch["label"]
        output = self.model(batch["image"], batch["camid"] if self.use_cameras else None)
        i2t_logits = output.image_projection @ self.text_features.T
        losses = encoder_training_loss(
            output.logits, output.features, i2t_logits, labels, self.optim.loss_weights,
            self.optim.label_smoothing, self.optim.triplet_margin,
        )
        if self.optim.loss_weights.caption > 0:
            caption = self._caption_loss(output.image_projection, labels, batch["index"])
            losses["caption_loss"] = caption
            losses["loss"] = losses["loss"] + self.optim.loss_weights.caption * caption
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
        return caption_alignment_loss(projection[mask], targets, labels[mask],
                                      self.optim.caption_temperature)

    def configure_optimizers(self):
        weights, biases = [], []
        for name, parameter in self.model.named_parameters():
            if parameter.requires_grad:
                (biases if name.endswith("bias") else weights).append(parameter)
        groups = [
            {"name": "weights", "params": weights, "lr": self.optim.base_lr,
             "weight_decay": self.optim.weight_decay},
            {"name": "biases", "params": biases,
             "lr": self.optim.base_lr * self.optim.bias_lr_factor,
             "weight_decay": self.optim.weight_decay_bias},
        ]
        optimizer = torch.optim.Adam(groups)

        def multiplier(completed_epochs: int) -> float:
            return warmup_multistep(
                completed_epochs + 1, self.optim.warmup_epochs, self.optim.warmup_factor,
                self.optim.milestones, self.optim.gamma,
            )

        scheduler = {"scheduler": LambdaLR(optimizer, multiplier), "interval": "epoch"}
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


class IdentityBatchDataModule(L.LightningDataModule):
    """P×K identity batches of the training split; each DDP rank gets whole batches."""

    def __init__(
        self, train_index: pd.DataFrame, transform, batch_size: int, num_instances: int,
        seed: int, num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.train_index = train_index.reset_index(drop=True)
        self.transform = transform
        self.batch_size = batch_size
        self.num_instances = num_instances
        self.seed = seed
        self.num_workers = num_workers

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        sampler = RandomIdentitySampler(
            self.train_index["label"].tolist(), self.batch_size, self.num_instances, seed=self.seed,
            num_replicas=trainer.world_size if trainer else 1,
            rank=trainer.global_rank if trainer else 0,
        )
        return DataLoader(
            ReidImageDataset(self.train_index, self.transform), batch_size=self.batch_size,
            sampler=sampler, drop_last=True, num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )
