"""Stage 1 of CLIP-ReID: learn identity-specific prompt context against a frozen CLIP.

Image features are computed once (the image encoder never changes in this stage); each epoch
shuffles them into batches, encodes the batch's identity prompts and pulls matching image and
text features together with a symmetric supervised contrastive loss. Only the context is trained.

Caption modes (for datasets with text): ``none`` (the paper), ``replace`` (a captioned image's
text feature comes from its caption instead of the learnable prompt) and ``append`` (the
learnable prompt followed by the caption).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Sampler

from clip_reid.data.layouts import class_word_for
from clip_reid.data.samplers import GraphSampler
from clip_reid.modeling.backbone import ClipBackbone
from clip_reid.modeling.clip_factory import ClipSpec, tokenizer_for
from clip_reid.modeling.features import extract_features, recalibrate_batch_norm
from clip_reid.modeling.losses import prompt_learning_loss
from clip_reid.modeling.model_settings import ModelSettings
from clip_reid.modeling.prompt_artifacts import (
    PromptLearnerCheckpoint,
    TextFeatures,
    TrainImageFeatures,
)
from clip_reid.modeling.prompt_learner import PromptLearner
from clip_reid.modeling.reid_backbone import ReidImageEncoder
from clip_reid.modeling.schedules import cosine_with_warmup
from clip_reid.modeling.text_encoder import TextEncoder
from clip_reid.modeling.trainer import TrainerSettings, fit_resumable
from clip_reid.settings_base import Settings, setting

logger = logging.getLogger(__name__)

CAPTION_MODES = ("none", "replace", "append")
SIMILARITIES = ("cosine", "dot")
STAGE = "prompt_learning"


@dataclass(frozen=True)
class PromptLearningOptimizer(Settings):
    """Adam on the context only, cosine schedule with linear warm-up (per epoch)."""

    base_lr: float = setting(3.5e-4, gt=0.0)
    weight_decay: float = setting(1e-4, ge=0.0)
    warmup_epochs: int = setting(5, ge=0)
    warmup_lr: float = setting(1e-5, gt=0.0)
    min_lr: float = setting(1e-6, ge=0.0)


@dataclass(frozen=True)
class GraphSamplingSettings(Settings):
    """Graph sampling (nearest-class batches) instead of random batches."""

    enabled: bool = False
    classes_per_batch: int = setting(16, ge=1)  # P: an anchor identity and its P-1 nearest
    instances_per_class: int = setting(4, ge=1)  # K
    similarity: str = setting("cosine", choices=SIMILARITIES)
    refresh_every: int = setting(1, ge=1)  # rebuild the class graph every N epochs
    start_epoch: int = setting(0, ge=0)  # random class groups before this epoch


@dataclass(frozen=True)
class PromptLearningSettings(Settings):
    """The `prompt_learning` block (stage 1); the paper's RN50 values by default."""

    max_epochs: int = setting(60, ge=1)
    batch_size: int = setting(64, ge=1)
    n_ctx: int = setting(4, ge=1)
    class_word: str | None = None  # null: the dataset layout's (person; vehicle for veri776)
    caption_mode: str = setting("none", choices=CAPTION_MODES)
    feature_batch_size: int = setting(64, ge=1)  # batch size of the one-off feature caching
    optimizer: PromptLearningOptimizer = setting(default_factory=PromptLearningOptimizer)
    graph_sampling: GraphSamplingSettings = setting(default_factory=GraphSamplingSettings)
    work_dir: str = "data/06_models/work/prompt_learning"  # resumable state of a stopped run

    def for_layout(self, layout: str) -> PromptLearningSettings:
        """These settings with the class word resolved: the one set, else ``layout``'s."""
        if self.class_word is not None:
            return self
        return dataclasses.replace(self, class_word=class_word_for(layout))


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
        optim: PromptLearningOptimizer,
        max_epochs: int,
        caption_mode: str,
    ) -> None:
        super().__init__()
        if caption_mode not in CAPTION_MODES:
            raise ValueError(f"caption_mode must be one of {CAPTION_MODES}, got {caption_mode!r}.")
        self.prompt_learner = prompt_learner
        self.text_encoder = text_encoder.requires_grad_(False)
        self.optim = optim
        self.max_epochs = max_epochs
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
                completed_epochs + 1, self.max_epochs, self.optim.base_lr,
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


class RankShare(Sampler[list[int]]):
    """Rank ``rank``'s part of every global batch of ``batches``: the batch cut into ``world``
    consecutive parts as even as possible (a P×K batch with P a multiple of ``world`` gives each
    rank whole identities). Every rank draws the same global batches (same seed), so the parts
    are disjoint and together the whole batch; a batch smaller than ``world`` (a short last one)
    has no part for some rank and is skipped by all, as DDP needs the same step count on each."""

    def __init__(self, batches: Iterable[list[int]], rank: int, world: int) -> None:
        self.batches, self.rank, self.world = batches, rank, world

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            if len(batch) >= self.world:
                yield [int(i) for i in torch.tensor(batch).tensor_split(self.world)[self.rank]]

    def __len__(self) -> int:
        sizes = getattr(self.batches, "sizes", None)
        return sum(1 for size in sizes() if size >= self.world) if sizes else len(self.batches)


class ShuffledBatches(BatchSampler):
    """``DataLoader(shuffle=True, generator=g, drop_last=False)``'s batches, with their sizes
    known up front (for :class:`RankShare`'s length)."""

    def __init__(self, dataset: Dataset, batch_size: int, generator: torch.Generator) -> None:
        super().__init__(RandomSampler(dataset, generator=generator), batch_size, drop_last=False)

    def sizes(self) -> list[int]:
        total = len(self.sampler)
        return [min(self.batch_size, total - start) for start in range(0, total, self.batch_size)]


class CachedFeaturesDataModule(L.LightningDataModule):
    """Batches of cached features: shuffled (a last partial batch kept, never an empty one),
    or graph-sampled. ``generators`` and ``callbacks`` are what training must restore on
    resume and run each epoch. With ``share_batches`` (the Ray engine) every DDP rank takes its
    :class:`RankShare` of each of these batches, so the global batch stays ``batch_size``."""

    def __init__(self, dataset: CachedFeatures, settings: PromptLearningSettings, seed: int,
                 share_batches: bool = False) -> None:
        super().__init__()
        self.dataset, self.batch_size = dataset, settings.batch_size
        self.share_batches = share_batches
        self.generator = torch.Generator().manual_seed(seed)
        self.sampler: GraphSampler | None = None
        self.callbacks: list[Callback] = []
        graph = settings.graph_sampling
        if graph.enabled:
            # Until `start_epoch`, the class graph comes from random vectors: random P×K batches.
            num_classes = int(dataset.labels.max()) + 1
            random_features = torch.randn(num_classes, 8, generator=self.generator)
            self.sampler = GraphSampler(random_features, dataset.labels.tolist(),
                                        graph.classes_per_batch, graph.instances_per_class,
                                        graph.similarity, seed=seed)
            self.callbacks.append(GraphRefresh(self.sampler, graph.refresh_every,
                                               graph.start_epoch))

    @property
    def generators(self) -> list[torch.Generator]:
        return [self.generator]

    def train_dataloader(self) -> DataLoader:
        if self.sampler is not None:
            return DataLoader(self.dataset, batch_sampler=self._shared(self.sampler))
        if not self.share_batches:
            return DataLoader(self.dataset, batch_size=self.batch_size, shuffle=True,
                              drop_last=False, generator=self.generator)
        # the same draws from the generator as the loader above (its seed, then the order)
        batches = ShuffledBatches(self.dataset, self.batch_size, self.generator)
        return DataLoader(self.dataset, batch_sampler=self._shared(batches),
                          generator=self.generator)

    def _shared(self, batches: Iterable[list[int]]) -> Iterable[list[int]]:
        trainer = self.trainer
        if not self.share_batches or trainer is None or trainer.world_size == 1:
            return batches
        return RankShare(batches, trainer.global_rank, trainer.world_size)


class ProjectionOnly(nn.Module):
    """Stage 1 aligns text with the projected image feature (attention-pool or ViT proj)."""

    def __init__(self, encoder: ReidImageEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, images: Tensor, camids: Tensor | None = None) -> Tensor:
        return self.encoder(images, camids).projection


def cache_train_features(
    train: pd.DataFrame, clip_backbone: ClipBackbone, model: ModelSettings,
    settings: PromptLearningSettings, device: torch.device, num_workers: int,
) -> TrainImageFeatures:
    """Image features of every training image, computed once with the frozen encoder."""
    clip = clip_backbone.clip_model(model.clip)
    # stage 1 caches camera-free features (as the reference): no camera embedding
    encoder = ReidImageEncoder(clip.visual, model.image_size, model.stride, num_cameras=0,
                               sie_coef=model.sie_coef)
    transform = model.eval_transform()
    if model.clip.random_image_tower and not clip_backbone.finetuned:
        recalibrate_batch_norm(encoder, train, transform, device=device)
    # stage 1 caches plain fp32 features of the unflipped images (as the reference)
    features = extract_features(ProjectionOnly(encoder), train, transform,
                                batch_size=settings.feature_batch_size, flip=False, dtype="fp32",
                                num_workers=num_workers, device=device,
                                description="stage-1 features")
    return TrainImageFeatures(features, torch.tensor(train["label"].to_numpy()),
                              tuple(train["path"]))


def caption_tokens(
    paths: list[str], captions: pd.DataFrame, mode: str, learner: PromptLearner,
    text_encoder: TextEncoder, seed: int,
) -> Tensor | None:
    """One caption per image (chosen by seed when several), tokenised for the caption mode."""
    if mode == "none":
        return None
    chosen = (captions.sample(frac=1.0, random_state=seed).drop_duplicates("path")
              .set_index("path")["caption"])
    texts = [chosen[path] if path in chosen.index else None for path in paths]
    present = [i for i, text in enumerate(texts) if text is not None]
    tokens = torch.zeros(len(paths), text_encoder.context_length, dtype=torch.long)
    if present:
        sentences = [texts[i] for i in present]
        tokens[present] = (learner.caption_tokens(text_encoder, sentences) if mode == "append"
                           else text_encoder.tokenize(sentences))
    logger.info("Stage 1 caption mode %r: %d/%d training images have a caption", mode,
                len(present), len(paths))
    return tokens


def _check_ray_batches(images: int, settings: PromptLearningSettings, workers: int) -> None:
    """Every Ray worker needs a part of each global batch: refuse a batch smaller than the
    workers; say that a last shuffled batch that small is skipped."""
    graph = settings.graph_sampling
    size, key = ((graph.classes_per_batch * graph.instances_per_class,
                  "graph_sampling.classes_per_batch x instances_per_class") if graph.enabled
                 else (settings.batch_size, "batch_size"))
    if size < workers:
        raise ValueError(f"prompt_learning.{key} ({size}) is smaller than trainer.ray.num_workers "
                         f"({workers}): every worker takes a part of each batch; use a larger "
                         f"batch or fewer workers.")
    tail = images % settings.batch_size
    if not graph.enabled and 0 < tail < workers:
        logger.warning("Stage 1 on %d Ray workers skips each epoch's last batch of %d image(s) "
                       "(fewer than the workers); the local engine trains on it.", workers, tail)


def prompt_learner_checkpoint(
    learner: PromptLearner, spec: ClipSpec, caption_mode: str, caption_finetuned: bool,
    final_loss: float,
) -> PromptLearnerCheckpoint:
    """The stage-1 checkpoint: how to rebuild the learner, its weights, its last loss."""
    return PromptLearnerCheckpoint(
        {"clip": spec.to_dict(), "num_classes": learner.num_classes, "n_ctx": learner.n_ctx,
         "class_word": learner.class_word, "caption_mode": caption_mode,
         "caption_finetuned": caption_finetuned},
        {k: v.detach().cpu() for k, v in learner.state_dict().items()}, final_loss)


def learn_prompts(
    train_features: TrainImageFeatures, image_captions: pd.DataFrame,
    clip_backbone: ClipBackbone,
    model: ModelSettings, settings: PromptLearningSettings, trainer: TrainerSettings, seed: int,
    callbacks: Sequence[Callback] = (),
) -> tuple[PromptLearnerCheckpoint, TextFeatures]:
    """Stage 1: learn the identity context on cached features; return the learner's
    checkpoint and the text features of every identity (the input of stage 2)."""
    L.seed_everything(seed, workers=True, verbose=False)
    clip = clip_backbone.clip_model(model.clip)
    text_encoder = TextEncoder(clip, tokenizer_for(model.clip.arch))
    labels = train_features.labels
    num_classes = train_features.num_classes
    if settings.class_word is None:
        raise ValueError("prompt_learning.class_word is unresolved: pass "
                         "settings.for_layout(<dataset layout name>) (person, vehicle, ...).")
    learner = PromptLearner(num_classes, text_encoder, settings.n_ctx, settings.class_word)
    module = PromptLearningModule(learner, text_encoder, settings.optimizer, settings.max_epochs,
                                  settings.caption_mode)
    tokens = caption_tokens(list(train_features.paths), image_captions, settings.caption_mode,
                            learner, text_encoder, seed)
    on_ray = trainer.engine == "ray"
    data = CachedFeaturesDataModule(CachedFeatures(train_features.features, labels, tokens),
                                    settings, seed, share_batches=on_ray)
    fingerprint = {"model": model.to_dict(), STAGE: settings.to_dict(),
                   "trainer": trainer.to_dict(), "seed": seed, "num_images": len(labels),
                   "num_classes": num_classes}
    if on_ray:
        from clip_reid.modeling.ray_training import fit_on_ray

        _check_ray_batches(len(labels), settings, trainer.ray.num_workers)
        result = fit_on_ray(module.train(), data, stage=STAGE, work_dir=Path(settings.work_dir),
                            max_epochs=settings.max_epochs, trainer=trainer, seed=seed,
                            fingerprint=fingerprint, generators=data.generators,
                            callbacks=[*data.callbacks, *callbacks])
    else:
        result = fit_resumable(module.train(), data, stage=STAGE,
                               work_dir=Path(settings.work_dir), max_epochs=settings.max_epochs,
                               trainer=trainer, fingerprint=fingerprint,
                               generators=data.generators, callbacks=[*data.callbacks, *callbacks])
    module.eval()
    checkpoint = prompt_learner_checkpoint(learner, model.clip, settings.caption_mode,
                                           clip_backbone.finetuned,
                                           result.metrics.get("loss", float("nan")))
    text_features = module.all_class_features().float().cpu()
    return checkpoint, TextFeatures.of_identities(text_features)
