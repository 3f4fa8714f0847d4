"""Nodes of prompt_learning: cache image features once, then learn the prompts."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch

from clip_reid.data.samplers import GraphSampler
from clip_reid.modeling import (
    PromptLearner,
    ReidImageEncoder,
    TextEncoder,
    tokenizer_for,
)
from clip_reid.modeling.backbone import is_finetuned, load_clip_backbone
from clip_reid.modeling.features import extract_features, recalibrate_batch_norm
from clip_reid.modeling.stage1 import (
    CachedFeatures,
    GraphRefresh,
    PromptLearningModule,
    Stage1Optimisation,
    random_batches,
)
from clip_reid.modeling.trainer import (
    build_trainer,
    finish_work_dir,
    raise_if_interrupted,
    resume_checkpoint,
)
from clip_reid.pipelines.model_params import clip_spec, eval_transform, trainer_settings

logger = logging.getLogger(__name__)


def _train_split(image_index: pd.DataFrame) -> pd.DataFrame:
    return image_index[image_index["split"] == "train"].reset_index(drop=True)


class _ProjectionOnly(torch.nn.Module):
    """Stage 1 aligns text with the projected image feature (attention-pool or ViT proj)."""

    def __init__(self, encoder: ReidImageEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, images, camids=None):
        return self.encoder(images, camids).projection


def extract_train_image_features(
    image_index: pd.DataFrame, clip_backbone: dict[str, Any], model: dict[str, Any],
    prompt_learning: dict[str, Any],
) -> dict[str, Any]:
    """Image features of every training image, computed once with the frozen encoder."""
    train = _train_split(image_index)
    clip = load_clip_backbone(clip_backbone, clip_spec(model))
    encoder = ReidImageEncoder(clip.visual, tuple(model["image_size"]), model.get("stride", 16))
    transform = eval_transform(model)
    if model["clip"]["weights"] == "random" and not is_finetuned(clip_backbone):
        recalibrate_batch_norm(encoder, train, transform)
    features = extract_features(
        _ProjectionOnly(encoder), train, transform,
        batch_size=prompt_learning.get("feature_batch_size", 64),
        num_workers=prompt_learning.get("num_workers", 0), description="stage-1 features",
    )
    return {"features": features, "labels": torch.tensor(train["label"].to_numpy()),
            "paths": train["path"].tolist()}


def _caption_tokens(
    paths: list[str], captions: pd.DataFrame, mode: str, learner: PromptLearner,
    text_encoder: TextEncoder, seed: int,
) -> torch.Tensor | None:
    """One caption per image (chosen by seed when several), tokenised for the caption mode."""
    if mode == "none":
        return None
    chosen = (captions.sample(frac=1.0, random_state=seed).drop_duplicates("path")
              .set_index("path")["caption"])
    texts = [chosen.get(path) for path in paths]
    present = [i for i, text in enumerate(texts) if text is not None]
    tokens = torch.zeros(len(paths), text_encoder.context_length, dtype=torch.long)
    if present:
        sentences = [texts[i] for i in present]
        tokens[present] = (learner.caption_tokens(text_encoder, sentences) if mode == "append"
                           else text_encoder.tokenize(sentences))
    logger.info("Stage 1 caption mode %r: %d/%d training images have a caption", mode,
                len(present), len(paths))
    return tokens


def train_prompt_learner(
    train_image_features: dict[str, Any],
    image_captions: pd.DataFrame,
    clip_backbone: dict[str, Any],
    model: dict[str, Any],
    prompt_learning: dict[str, Any],
    trainer: dict[str, Any],
    seed: int,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Stage 1: learn the identity context; return its checkpoint and all text features."""
    L.seed_everything(seed, workers=True, verbose=False)
    spec = clip_spec(model)
    clip = load_clip_backbone(clip_backbone, spec)
    text_encoder = TextEncoder(clip, tokenizer_for(spec.arch))
    labels = train_image_features["labels"]
    num_classes = int(labels.max()) + 1
    learner = PromptLearner(num_classes, text_encoder, prompt_learning.get("n_ctx", 4),
                            prompt_learning.get("class_word", "person"))
    mode = prompt_learning.get("caption_mode", "none")
    optim = Stage1Optimisation(**prompt_learning["optimizer"],
                               max_epochs=prompt_learning["max_epochs"])
    module = PromptLearningModule(learner, text_encoder, optim, mode)
    dataset = CachedFeatures(
        train_image_features["features"], labels,
        _caption_tokens(train_image_features["paths"], image_captions, mode, learner,
                        text_encoder, seed),
    )
    callbacks, loader = [], None
    graph = prompt_learning.get("graph_sampling") or {}
    if graph.get("enabled", False):
        # Until `start_epoch`, the class graph comes from random vectors: random P×K batches.
        random_features = torch.randn(num_classes, 8, generator=torch.Generator().manual_seed(seed))
        sampler = GraphSampler(random_features, labels.tolist(), graph["classes_per_batch"],
                               graph["instances_per_class"], graph.get("similarity", "cosine"),
                               seed=seed)
        callbacks.append(GraphRefresh(sampler, graph.get("refresh_every", 1),
                                      graph.get("start_epoch", 0)))
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler)
    else:
        loader = random_batches(dataset, prompt_learning["batch_size"], seed)

    settings = trainer_settings(trainer, prompt_learning["max_epochs"])
    work_dir = Path(prompt_learning["work_dir"])
    fingerprint = {"model": model, "prompt_learning": prompt_learning, "trainer": trainer,
                   "seed": seed, "num_images": len(labels), "num_classes": num_classes}
    resume = resume_checkpoint(work_dir, fingerprint)
    fit = build_trainer(settings, work_dir, "prompt_learning", callbacks)
    fit.fit(module.train(), loader, ckpt_path=resume, weights_only=True)
    raise_if_interrupted(fit, work_dir)
    finish_work_dir(work_dir)

    module.eval()
    text_features = module.all_class_features().float().cpu()
    checkpoint = {
        "config": {"clip": spec.to_dict(), "num_classes": num_classes,
                   "n_ctx": learner.n_ctx, "class_word": learner.class_word,
                   "caption_mode": mode, "caption_finetuned": is_finetuned(clip_backbone)},
        "state_dict": {k: v.detach().cpu() for k, v in learner.state_dict().items()},
        "final_loss": float(fit.callback_metrics.get("loss", torch.tensor(float("nan")))),
    }
    return checkpoint, {"features": text_features, "labels": torch.arange(num_classes)}
