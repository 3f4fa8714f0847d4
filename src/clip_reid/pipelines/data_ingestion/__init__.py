"""Ingestion of a dataset in Market-1501 layout into the image index."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
