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

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import Dataset

from clip_reid.data.image_dataset import read_rgb
from clip_reid.modeling.losses import supervised_contrastive_loss
from clip_reid.modeling.schedules import cosine_with_warmup


@dataclass(frozen=True)
class CaptionFinetuneOptimisation:
    """AdamW with one learning rate per tower; cosine schedule with linear warm-up (per epoch)."""

    visual_lr: float = 1e-5
    text_lr: float = 1e-5
    weight_decay: float = 0.1
    warmup_epochs: int = 1
    warmup_factor: float = 0.1
    min_factor: float = 0.01
    temperature: float = 0.07
    max_epochs: int = 10


def caption_contrastive_loss(
    image_features: Tensor, text_features: Tensor, caption_ids: Tensor, temperature: float
) -> Tensor:
    """Mean of image→text and text→image InfoNCE on cosine similarities / temperature."""
    images = F.normalize(image_features, dim=-1)
    texts = F.normalize(text_features, dim=-1)
    return 0.5 * (
        supervised_contrastive_loss(images / temperature, texts, caption_ids, caption_ids)
        + supervised_contrastive_loss(texts / temperature, images, caption_ids, caption_ids)
    )


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

    def __init__(self, clip_model: nn.Module, optim: CaptionFinetuneOptimisation) -> None:
        super().__init__()
        self.clip = clip_model
        self.optim = optim
        # The temperature is a parameter of the method here, not learned.
        self.clip.logit_scale.requires_grad_(False)

    def training_step(self, batch, batch_idx: int) -> Tensor:
        images, tokens, caption_ids = batch
        loss = caption_contrastive_loss(
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
                completed_epochs + 1, self.optim.max_epochs, 1.0, self.optim.warmup_epochs,
                self.optim.warmup_factor, self.optim.min_factor,
            )

        scheduler = {"scheduler": LambdaLR(optimizer, multiplier), "interval": "epoch"}
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
