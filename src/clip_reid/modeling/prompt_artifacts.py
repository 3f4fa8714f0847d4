"""What stage 1 hands on: the cached training-image features it learns from, the learned
prompt context, and the text feature of every identity that stage 2 aligns images with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


def _checked_state(state: Any, keys: tuple[str, ...], source: str, writer: str) -> Mapping:
    if not isinstance(state, Mapping) or not set(keys) <= set(state):
        found = sorted(state) if isinstance(state, Mapping) else type(state).__name__
        raise ValueError(f"{source} is not what {writer} writes: expected {list(keys)}, found "
                         f"{found}. Re-run the prompt_learning pipeline.")
    return state


def _checked_rows(features: Tensor, labels: Tensor, name: str) -> None:
    if features.ndim != 2 or labels.ndim != 1 or len(features) != len(labels):
        raise ValueError(f"{name}: features {tuple(features.shape)} and labels "
                         f"{tuple(labels.shape)} do not describe the same rows.")


@dataclass(frozen=True, eq=False)
class TrainImageFeatures:
    """The frozen image encoder's projection of every training image (row i: ``paths[i]``,
    identity label ``labels[i]``), computed once: stage 1 never runs the image tower again."""

    features: Tensor
    labels: Tensor
    paths: tuple[str, ...]

    def __post_init__(self) -> None:
        _checked_rows(self.features, self.labels, "train_image_features")
        if len(self.paths) != len(self.labels):
            raise ValueError(f"train_image_features: {len(self.paths)} paths for "
                             f"{len(self.labels)} rows.")

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1

    def to_state(self) -> dict[str, Any]:
        return {"features": self.features, "labels": self.labels, "paths": list(self.paths)}

    @classmethod
    def from_state(cls, state: Any, source: str = "train_image_features") -> TrainImageFeatures:
        state = _checked_state(state, ("features", "labels", "paths"), source,
                               "extract_train_image_features")
        return cls(state["features"], state["labels"], tuple(state["paths"]))


@dataclass(frozen=True, eq=False)
class TextFeatures:
    """One text feature per identity label (row i: label i), stage 2's classifier targets."""

    features: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        _checked_rows(self.features, self.labels, "text_features")

    @classmethod
    def of_identities(cls, features: Tensor) -> TextFeatures:
        return cls(features, torch.arange(len(features)))

    def to_state(self) -> dict[str, Any]:
        return {"features": self.features, "labels": self.labels}

    @classmethod
    def from_state(cls, state: Any, source: str = "text_features") -> TextFeatures:
        state = _checked_state(state, ("features", "labels"), source, "train_prompt_learner")
        return cls(state["features"], state["labels"])


@dataclass(frozen=True, eq=False)
class PromptLearnerCheckpoint:
    """The learned context: how to rebuild the PromptLearner (``config``), its weights and the
    last epoch's loss."""

    config: Mapping[str, Any]
    state_dict: Mapping[str, Tensor]
    final_loss: float

    def to_state(self) -> dict[str, Any]:
        return {"config": dict(self.config), "state_dict": dict(self.state_dict),
                "final_loss": self.final_loss}

    @classmethod
    def from_state(cls, state: Any, source: str = "prompt_learner") -> PromptLearnerCheckpoint:
        state = _checked_state(state, ("config", "state_dict", "final_loss"), source,
                               "train_prompt_learner")
        return cls(state["config"], state["state_dict"], float(state["final_loss"]))
