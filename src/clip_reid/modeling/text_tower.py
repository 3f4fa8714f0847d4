"""CLIP's text tower inside a ReID checkpoint, so a trained model can embed free-text queries.

Stage 2 aligns the image projection with text features of CLIP's (frozen, possibly
caption-tuned) text tower, so that tower, and only it, maps a sentence into the space of the
image projection. ``ReidCheckpoint.from_model(..., text_tower=clip)`` stores its weights next to
the image model; :func:`build_text_tower` rebuilds it strictly. Checkpoints written before
the tower was stored still load as image models; asking them for text fails with the fix.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from clip_reid.modeling.clip_factory import ClipSpec, load_clip, tokenizer_for
from clip_reid.modeling.text_encoder import TextEncoder
from clip_reid.modeling.weights import load_state_dict_strictly


def text_tower_weights(clip_model: nn.Module) -> dict[str, torch.Tensor]:
    """The text-tower weights of ``clip_model`` (embeddings, transformer, final LN, projection)."""
    encoder = TextEncoder(clip_model, tokenizer=None)
    return {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()}


def build_text_tower(spec: ClipSpec, weights: Mapping[str, torch.Tensor]) -> TextEncoder:
    """The text encoder of ``spec``'s architecture with ``weights`` (eval mode, CPU, its arch's
    tokenizer), loaded strictly."""
    encoder = TextEncoder(load_clip(spec.untrained()), tokenizer_for(spec.arch))
    load_state_dict_strictly(encoder, weights, "the ReID checkpoint's text tower")
    return encoder.eval()


@torch.inference_mode()
def encode_tokens(encoder: TextEncoder, tokens: torch.Tensor) -> torch.Tensor:
    """Text features (n, embed_dim) of already tokenised sentences."""
    tokens = tokens.to(encoder.token_embedding.weight.device)
    return encoder(encoder.token_embedding(tokens), tokens)
