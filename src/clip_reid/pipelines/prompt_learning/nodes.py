"""Nodes of prompt_learning: cache image features once, then learn the prompts."""

from __future__ import annotations

from typing import Any

import pandas as pd

from clip_reid.data.settings import DatasetSettings
from clip_reid.data.splits import select_split
from clip_reid.modeling.backbone import ClipBackbone
from clip_reid.modeling.model_settings import ModelSettings
from clip_reid.modeling.prompt_artifacts import (
    PromptLearnerCheckpoint,
    TextFeatures,
    TrainImageFeatures,
)
from clip_reid.modeling.prompt_learning import (
    PromptLearningSettings,
    cache_train_features,
    learn_prompts,
)
from clip_reid.modeling.trainer import TrainerSettings, resolve_device


def extract_train_image_features(
    image_index: pd.DataFrame, clip_backbone: ClipBackbone, model: dict[str, Any],
    prompt_learning: dict[str, Any], trainer: dict[str, Any],
) -> TrainImageFeatures:
    """Image features of every training image, computed once with the frozen encoder."""
    hardware = TrainerSettings.from_params(trainer, "trainer")
    return cache_train_features(
        select_split(image_index, "train"), clip_backbone,
        ModelSettings.from_params(model, "model"),
        PromptLearningSettings.from_params(prompt_learning, "prompt_learning"),
        resolve_device(hardware), hardware.num_workers,
    )


def train_prompt_learner(
    train_image_features: TrainImageFeatures, image_captions: pd.DataFrame,
    clip_backbone: ClipBackbone, model: dict[str, Any], prompt_learning: dict[str, Any],
    dataset: dict[str, Any], trainer: dict[str, Any], seed: int,
) -> tuple[PromptLearnerCheckpoint, TextFeatures]:
    """Stage 1: learn the identity context ("A photo of a X X X X <class word>."); return its
    checkpoint and all text features."""
    layout = DatasetSettings.from_params(dataset, "dataset").name
    return learn_prompts(
        train_image_features, image_captions, clip_backbone,
        ModelSettings.from_params(model, "model"),
        PromptLearningSettings.from_params(prompt_learning, "prompt_learning").for_layout(layout),
        TrainerSettings.from_params(trainer, "trainer"), seed,
    )
