"""Identity-specific learnable prompts: "A photo of a X X X X person." with X learned per class."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from clip_reid.modeling.text_encoder import TextEncoder

PLACEHOLDER = "X"


class PromptLearner(nn.Module):
    """Class-specific context vectors ``[num_classes, n_ctx, width]`` inside a fixed template.

    The template's other tokens are frozen embeddings taken from the text tower's current token
    embedding; call :meth:`rebuild_frozen_embeddings` after that embedding changes (e.g. after
    caption fine-tuning). With ``captions``, the prompt becomes "A photo of a X X X X person,
    <caption>." (truncated to the context length with its end-of-text token kept).
    """

    def __init__(
        self, num_classes: int, text_encoder: TextEncoder, n_ctx: int, class_word: str,
    ) -> None:
        super().__init__()
        self.n_ctx = n_ctx
        self.prefix_text = "A photo of a " + " ".join([PLACEHOLDER] * n_ctx)
        self.class_word = class_word
        width = text_encoder.token_embedding.weight.shape[1]
        self.ctx = nn.Parameter(torch.empty(num_classes, n_ctx, width).normal_(std=0.02))
        tokens = text_encoder.tokenize([f"{self.prefix_text} {class_word}."])
        placeholder = text_encoder.tokenize([PLACEHOLDER])[0, 1].item()
        positions = (tokens[0] == placeholder).nonzero().flatten()
        if len(positions) != n_ctx or (positions.diff() != 1).any():
            raise ValueError(f"Cannot locate {n_ctx} consecutive placeholders in the template.")
        self.ctx_start = int(positions[0])
        self.register_buffer("tokenized_prompts", tokens, persistent=False)
        self.register_buffer("template_embedding", torch.empty(0), persistent=False)
        self.rebuild_frozen_embeddings(text_encoder)

    @property
    def num_classes(self) -> int:
        return self.ctx.shape[0]

    @torch.no_grad()
    def rebuild_frozen_embeddings(self, text_encoder: TextEncoder) -> None:
        """Refresh the template's frozen token embeddings from the current text tower."""
        device = text_encoder.token_embedding.weight.device
        self.template_embedding = text_encoder.token_embedding(self.tokenized_prompts.to(device))

    def caption_tokens(self, text_encoder: TextEncoder, captions: list[str]) -> Tensor:
        """Token ids of "A photo of a X X X X person, <caption>." for each caption."""
        sentences = [f"{self.prefix_text} {self.class_word}, {c.strip().rstrip('.')}."
                     for c in captions]
        return text_encoder.tokenize(sentences)

    def forward(self, labels: Tensor, embeddings: Tensor | None = None) -> Tensor:
        """Prompt embeddings ``[B, context, width]`` with each label's context inserted.

        ``embeddings``: token embeddings of per-sample prompts (append mode); by default the
        template's.
        """
        if embeddings is None:
            embeddings = self.template_embedding.expand(len(labels), -1, -1)
        start, end = self.ctx_start, self.ctx_start + self.n_ctx
        ctx = self.ctx[labels].to(embeddings.dtype)
        return torch.cat([embeddings[:, :start], ctx, embeddings[:, end:]], dim=1)
