"""CLIP loading and ReID adaptation, prompt learning, losses and Lightning training modules."""

from clip_reid.modeling.clip_factory import (
    ClipSpec,
    load_clip,
    tokenizer_for,
)
from clip_reid.modeling.prompt_learner import PromptLearner
from clip_reid.modeling.reid_backbone import ImageFeatures, ReidImageEncoder, resize_grid_embedding
from clip_reid.modeling.reid_checkpoint import ReidCheckpoint
from clip_reid.modeling.reid_model import (
    ClipReidModel,
    ReidConfig,
    ReidTrainOutput,
)
from clip_reid.modeling.text_encoder import TextEncoder
from clip_reid.modeling.weights import WeightsError

__all__ = [
    "ClipReidModel",
    "ClipSpec",
    "ImageFeatures",
    "PromptLearner",
    "ReidCheckpoint",
    "ReidConfig",
    "ReidImageEncoder",
    "ReidTrainOutput",
    "TextEncoder",
    "WeightsError",
    "load_clip",
    "resize_grid_embedding",
    "tokenizer_for",
]
