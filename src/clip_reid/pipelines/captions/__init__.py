"""captions: one caption table from whatever text a dataset has."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
