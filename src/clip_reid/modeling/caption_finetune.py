"""Caption fine-tuning of CLIP before stage 1: symmetric contrastive learning on (image, caption).

CLIP-ReID assumes a CLIP that already ties images to text. When the dataset has captions, this
step adapts (or, for a randomly initialised demo CLIP, creates) that tie on the person domain.
It trains both towers at CLIP's own input resolution, so the tuned weights keep the original
shapes and the ReID adaptation of stages 1 and 2 applies to them unchanged.

Several images often share one caption (attribute sentences describe an identity), so pairs
with the same caption are positives of each other: with all captions distinct the loss is
exactly CLIP's symmetric InfoNCE.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader, Dataset

from clip_reid.data.image_dataset import read_rgb
from clip_reid.data.transforms import build_train_transform
from clip_reid.modeling.backbone import ClipBackbone
from clip_reid.modeling.clip_factory import load_clip, tokenizer_for
from clip_reid.modeling.losses import symmetric_contrastive_loss
from clip_reid.modeling.model_settings import ModelSettings
from clip_reid.modeling.schedules import cosine_with_warmup
from clip_reid.modeling.text_encoder import TextEncoder
from clip_reid.modeling.trainer import TrainerSettings, fit_resumable
from clip_reid.settings_base import Settings, setting

logger = logging.getLogger(__name__)


STAGE = "caption_finetune"
# Caption fine-tuning's own augmentation, not encoder_training.augmentation: mirroring only.
PAIR_AUGMENTATION = {"flip_prob": 0.5, "padding": 0, "erasing_prob": 0.0}


@dataclass(frozen=True)
class CaptionFinetuneOptimizer(Settings):
    """AdamW with one learning rate per tower; cosine schedule with linear warm-up (per epoch)."""

    visual_lr: float = setting(1e-4, gt=0.0)
    text_lr: float = setting(1e-4, gt=0.0)
    weight_decay: float = setting(0.1, ge=0.0)
    warmup_epochs: int = setting(1, ge=0)
    warmup_factor: float = setting(0.1, gt=0.0, le=1.0)
    min_factor: float = setting(0.01, ge=0.0, le=1.0)
    temperature: float = setting(0.07, gt=0.0)


@dataclass(frozen=True)
class CaptionFinetuneSettings(Settings):
    """The `caption_finetune` block: optional caption fine-tuning of CLIP before stage 1."""

    enabled: bool = False
    max_epochs: int = setting(10, ge=1)
    batch_size: int = setting(64, ge=1)
    optimizer: CaptionFinetuneOptimizer = setting(default_factory=CaptionFinetuneOptimizer)
    work_dir: str = "data/06_models/work/caption_finetune"  # resumable state of a stopped run


def native_input_size(clip_model: nn.Module) -> tuple[int, int]:
    """(height, width) the CLIP image tower was built for (its positional grid fixes it)."""
    size = clip_model.visual.image_size
    return (size, size) if isinstance(size, int) else tuple(size)


class ImageCaptionPairs(Dataset):
    """(image, caption tokens, caption id) triples; the id marks pairs sharing one caption."""

    def __init__(self, paths: list[str], tokens: Tensor, caption_ids: Tensor, transform) -> None:
        if not len(paths) == len(tokens) == len(caption_ids):
            raise ValueError("paths, tokens and caption_ids must have one entry per pair.")
        self.paths, self.tokens, self.caption_ids = paths, tokens, caption_ids
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        image = self.transform(read_rgb(self.paths[index]))
        return image, self.tokens[index], self.caption_ids[index]


class CaptionFinetuneModule(L.LightningModule):
    """Trains a whole open_clip CLIP on image-caption pairs."""

    def __init__(self, clip_model: nn.Module, optim: CaptionFinetuneOptimizer, max_epochs: int
                 ) -> None:
        super().__init__()
        self.clip = clip_model
        self.optim = optim
        self.max_epochs = max_epochs
        # The temperature is a parameter of the method here, not learned.
        self.clip.logit_scale.requires_grad_(False)

    def training_step(self, batch, batch_idx: int) -> Tensor:
        images, tokens, caption_ids = batch
        loss = 0.5 * symmetric_contrastive_loss(  # CLIP's mean of the two directions
            self.clip.encode_image(images), self.clip.encode_text(tokens), caption_ids,
            self.optim.temperature,
        )
        self.log("loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True,
                 batch_size=len(caption_ids))
        return loss

    def configure_optimizers(self):
        visual_ids = {id(p) for p in self.clip.visual.parameters()}
        groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
        for parameter in self.clip.parameters():
            if parameter.requires_grad:
                tower = "visual" if id(parameter) in visual_ids else "text"
                # Gains, biases and norms (1-d) are not decayed, as in CLIP training.
                groups.setdefault((tower, parameter.ndim > 1), []).append(parameter)
        lrs = {"visual": self.optim.visual_lr, "text": self.optim.text_lr}
        optimizer = torch.optim.AdamW(
            [{"name": f"{tower}{'' if decay else '_no_decay'}", "params": params,
              "lr": lrs[tower], "weight_decay": self.optim.weight_decay if decay else 0.0}
             for (tower, decay), params in sorted(groups.items())],
        )

        def multiplier(completed_epochs: int) -> float:
            return cosine_with_warmup(
                completed_epochs + 1, self.max_epochs, 1.0, self.optim.warmup_epochs,
                self.optim.warmup_factor, self.optim.min_factor,
            )

        scheduler = {"scheduler": LambdaLR(optimizer, multiplier), "interval": "epoch"}
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


class CaptionPairsDataModule(L.LightningDataModule):
    """Shuffled batches of (image, caption) pairs; the last batch is dropped when it would be
    smaller than the others (a contrastive batch of one has no negatives)."""

    def __init__(self, dataset: ImageCaptionPairs, batch_size: int, seed: int,
                 num_workers: int) -> None:
        super().__init__()
        self.dataset, self.num_workers = dataset, num_workers
        self.batch_size = min(batch_size, len(dataset))
        self.generator = torch.Generator().manual_seed(seed)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=self.batch_size, shuffle=True,
                          drop_last=len(self.dataset) > self.batch_size,
                          num_workers=self.num_workers, generator=self.generator)


def caption_tuned_backbone(
    pairs: pd.DataFrame, model: ModelSettings, settings: CaptionFinetuneSettings,
    trainer: TrainerSettings, seed: int, callbacks: Sequence[Callback] = (),
) -> ClipBackbone:
    """CLIP fine-tuned on training ``pairs`` (columns path, caption), as a clip_backbone."""
    if pairs.empty:
        raise ValueError(
            "caption_finetune.enabled is true but no training image has a caption. Configure a "
            "source under captions.sources, or set caption_finetune.enabled: false."
        )
    L.seed_everything(seed, workers=True, verbose=False)
    clip = load_clip(model.clip).train()
    tokens = TextEncoder(clip, tokenizer_for(model.clip.arch)).tokenize(pairs["caption"].tolist())
    caption_ids = torch.as_tensor(pd.factorize(pairs["caption"])[0])
    mean, std = model.normalization()
    transform = build_train_transform(native_input_size(clip), mean, std, **PAIR_AUGMENTATION)
    data = CaptionPairsDataModule(
        ImageCaptionPairs(pairs["path"].tolist(), tokens, caption_ids, transform),
        settings.batch_size, seed, trainer.num_workers)
    logger.info("Caption fine-tuning %s on %d (image, caption) pairs, %d distinct captions",
                model.clip.arch, len(pairs), int(caption_ids.max()) + 1)
    module = CaptionFinetuneModule(clip, settings.optimizer, settings.max_epochs)
    fingerprint = {"model": model.to_dict(), STAGE: settings.to_dict(),
                   "trainer": trainer.to_dict(), "seed": seed, "pairs": len(pairs)}
    result = fit_resumable(module, data, stage=STAGE, work_dir=Path(settings.work_dir),
                           max_epochs=settings.max_epochs, trainer=trainer,
                           fingerprint=fingerprint, generators=[data.generator],
                           callbacks=callbacks)
    return ClipBackbone.of(model.clip, module.clip.eval(), pairs=len(pairs),
                                    final_loss=result.metrics.get("loss", float("nan")))
