"""prompt_learning: CLIP-ReID stage 1 (identity-specific text tokens against a frozen CLIP)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
