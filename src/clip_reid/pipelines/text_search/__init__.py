"""text_search: sentences → the gallery images that best match each, as a CSV and pictures."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
