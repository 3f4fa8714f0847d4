"""CLIP's text tower inside a ReID checkpoint, so a trained model can embed free-text queries.

Stage 2 aligns the image projection with text features of CLIP's (frozen, possibly
caption-tuned) text tower, so that tower, and only it, maps a sentence into the space of the
image projection. ``reid_checkpoint(..., text_tower=text_tower_state(clip))`` stores its weights
next to the image model; :func:`load_text_tower` rebuilds it strictly. Checkpoints written before
the tower was stored still load as image models; asking them for text fails with the fix.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from clip_reid.modeling.clip_factory import ClipSpec, load_clip, tokenizer_for
from clip_reid.modeling.text_encoder import TextEncoder
from clip_reid.modeling.weights import load_state_dict_strictly

TEXT_TOWER_KEY = "text_tower"


class MissingTextTowerError(ValueError):
    """The checkpoint predates stored text towers: text queries need a retrained model."""


def text_tower_state(clip_model: nn.Module) -> dict[str, Any]:
    """The text-tower weights of ``clip_model`` (embeddings, transformer, final LN, projection)."""
    encoder = TextEncoder(clip_model, tokenizer=None)
    return {"state_dict": {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()}}


def has_text_tower(checkpoint: dict[str, Any]) -> bool:
    return isinstance(checkpoint.get(TEXT_TOWER_KEY), dict)


def load_text_tower(checkpoint: dict[str, Any]) -> TextEncoder:
    """The checkpoint's text encoder (eval mode, CPU, its arch's tokenizer), loaded strictly."""
    if not has_text_tower(checkpoint):
        raise MissingTextTowerError(
            "This ReID checkpoint holds no text tower (it was trained before text search "
            "existed), so it cannot embed text queries. Retrain stage 2 (kedro run --pipelines "
            "encoder_training, or --pipelines full) to get a model that answers text queries; "
            "image queries work with it as they are."
        )
    spec = ClipSpec(**checkpoint["config"]["clip"]).untrained()
    encoder = TextEncoder(load_clip(spec), tokenizer_for(spec.arch))
    load_state_dict_strictly(encoder, checkpoint[TEXT_TOWER_KEY]["state_dict"],
                             "the ReID checkpoint's text tower")
    return encoder.eval()


@torch.inference_mode()
def encode_tokens(encoder: TextEncoder, tokens: torch.Tensor) -> torch.Tensor:
    """Text features (n, embed_dim) of already tokenised sentences."""
    tokens = tokens.to(encoder.token_embedding.weight.device)
    return encoder(encoder.token_embedding(tokens), tokens)
