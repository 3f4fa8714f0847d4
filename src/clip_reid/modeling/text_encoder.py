"""CLIP's text tower, fed with token embeddings so prompts can contain learned vectors."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class TextEncoder(nn.Module):
    """Embeddings + positions → causal transformer → final LN → end-of-text feature → projection."""

    def __init__(self, clip_model: nn.Module, tokenizer) -> None:
        super().__init__()
        self.transformer = clip_model.transformer
        self.positional_embedding = clip_model.positional_embedding
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        self.token_embedding = clip_model.token_embedding
        self.register_buffer("attn_mask", clip_model.attn_mask, persistent=False)
        self.tokenizer = tokenizer

    @property
    def context_length(self) -> int:
        return self.positional_embedding.shape[0]

    def forward(self, prompt_embeddings: Tensor, tokens: Tensor) -> Tensor:
        """Features of prompts given as embeddings; ``tokens`` locate each end-of-text token."""
        x = prompt_embeddings + self.positional_embedding.to(prompt_embeddings.dtype)
        x = self.transformer(x, attn_mask=self.attn_mask)
        x = self.ln_final(x)
        # CLIP's end-of-text token has the largest id, so argmax finds it in every row.
        x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
        if isinstance(self.text_projection, nn.Linear):
            return self.text_projection(x)
        return x @ self.text_projection

    def tokenize(self, sentences: list[str]) -> Tensor:
        """Token ids padded/truncated to the context length; a truncated row keeps its EOT."""
        return self.tokenizer(sentences, context_length=self.context_length)

    def encode_sentences(self, sentences: list[str]) -> Tensor:
        """Features of plain sentences (e.g. captions)."""
        tokens = self.tokenize(sentences).to(self.token_embedding.weight.device)
        return self(self.token_embedding(tokens), tokens)
