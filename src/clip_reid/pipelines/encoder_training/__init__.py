"""encoder_training: CLIP-ReID stage 2 (image-encoder fine-tuning with ID, triplet, i2t losses)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
