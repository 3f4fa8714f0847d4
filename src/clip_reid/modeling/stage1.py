"""Stage 1 of CLIP-ReID: learn identity-specific prompt context against a frozen CLIP.

Image features are computed once (the image encoder never changes in this stage); each epoch
shuffles them into batches, encodes the batch's identity prompts and pulls matching image and
text features together with a symmetric supervised contrastive loss. Only the context is trained.

Caption modes (for datasets with text): ``none`` (the paper), ``replace`` (a captioned image's
text feature comes from its caption instead of the learnable prompt) and ``append`` (the
learnable prompt followed by the caption).
"""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader, Dataset

from clip_reid.data.samplers import GraphSampler
from clip_reid.modeling.losses import prompt_learning_loss
from clip_reid.modeling.prompt_learner import PromptLearner
from clip_reid.modeling.schedules import cosine_with_warmup
from clip_reid.modeling.text_encoder import TextEncoder

CAPTION_MODES = ("none", "replace", "append")


@dataclass(frozen=True)
class Stage1Optimisation:
    """Adam on the context only, cosine schedule with linear warm-up (per epoch)."""

    base_lr: float = 3.5e-4
    weight_decay: float = 1e-4
    warmup_epochs: int = 5
    warmup_lr: float = 1e-5
    min_lr: float = 1e-6
    max_epochs: int = 60


class CachedFeatures(Dataset):
    """Cached image features with labels and, optionally, one caption token row per image."""

    def __init__(self, features: Tensor, labels: Tensor, caption_tokens: Tensor | None) -> None:
        self.features, self.labels = features, labels
        # Rows of zeros mean "no caption" (a real token row always starts with the SOT token).
        self.caption_tokens = caption_tokens

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        tokens = self.caption_tokens[index] if self.caption_tokens is not None else torch.zeros(0)
        return self.features[index], self.labels[index], tokens


class PromptLearningModule(L.LightningModule):
    """Trains a PromptLearner so its text features match the identities' image features."""

    def __init__(
        self,
        prompt_learner: PromptLearner,
        text_encoder: TextEncoder,
        optim: Stage1Optimisation,
        caption_mode: str = "none",
    ) -> None:
        super().__init__()
        if caption_mode not in CAPTION_MODES:
            raise ValueError(f"caption_mode must be one of {CAPTION_MODES}, got {caption_mode!r}.")
        self.prompt_learner = prompt_learner
        self.text_encoder = text_encoder.requires_grad_(False)
        self.optim = optim
        self.caption_mode = caption_mode

    def class_text_features(self, labels: Tensor) -> Tensor:
        """Text features of the identities ``labels`` from their learnable prompts alone."""
        tokens = self.prompt_learner.tokenized_prompts.expand(len(labels), -1)
        return self.text_encoder(self.prompt_learner(labels), tokens)

    def batch_text_features(self, labels: Tensor, caption_tokens: Tensor) -> Tensor:
        """Per-image text features under the caption mode (rows without caption use the prompt)."""
        features = self.class_text_features(labels)
        if self.caption_mode == "none" or caption_tokens.numel() == 0:
            return features
        has_caption = caption_tokens[:, 0] != 0
        if not has_caption.any():
            return features
        tokens = caption_tokens[has_caption]
        embeddings = self.text_encoder.token_embedding(tokens)
        if self.caption_mode == "append":
            captioned = self.text_encoder(
                self.prompt_learner(labels[has_caption], embeddings), tokens
            )
        else:
            captioned = self.text_encoder(embeddings, tokens)
        return features.masked_scatter(has_caption[:, None], captioned.to(features.dtype))

    def training_step(self, batch, batch_idx: int) -> Tensor:
        image_features, labels, caption_tokens = batch
        text_features = self.batch_text_features(labels, caption_tokens)
        loss = prompt_learning_loss(image_features, text_features, labels)
        self.log("loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True,
                 batch_size=len(labels))
        return loss

    @torch.no_grad()
    def all_class_features(self, batch_size: int = 256) -> Tensor:
        """Text features of every identity (the input of stage 2), in label order."""
        labels = torch.arange(self.prompt_learner.num_classes, device=self.device)
        return torch.cat([self.class_text_features(chunk) for chunk in labels.split(batch_size)])

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(
            [self.prompt_learner.ctx], lr=self.optim.base_lr, weight_decay=self.optim.weight_decay
        )

        def multiplier(completed_epochs: int) -> float:
            lr = cosine_with_warmup(
                completed_epochs + 1, self.optim.max_epochs, self.optim.base_lr,
                self.optim.warmup_epochs, self.optim.warmup_lr, self.optim.min_lr,
            )
            return lr / self.optim.base_lr

        scheduler = {"scheduler": LambdaLR(optimizer, multiplier), "interval": "epoch"}
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


class GraphRefresh(Callback):
    """Keeps a GraphSampler's class graph in step with the current text features."""

    def __init__(self, sampler: GraphSampler, every_epochs: int, start_epoch: int) -> None:
        self.sampler, self.every, self.start = sampler, max(1, every_epochs), start_epoch

    def on_train_epoch_start(self, trainer: L.Trainer, module: PromptLearningModule) -> None:
        self.sampler.set_epoch(trainer.current_epoch)
        since_start = trainer.current_epoch - self.start
        if since_start >= 0 and since_start % self.every == 0:
            self.sampler.update_features(module.all_class_features().float().cpu())


def random_batches(dataset: CachedFeatures, batch_size: int, seed: int) -> DataLoader:
    """Shuffled batches; a last partial batch is kept, never an empty one."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=False,
                      generator=generator)
