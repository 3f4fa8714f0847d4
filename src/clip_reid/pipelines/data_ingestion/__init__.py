"""Ingestion of a dataset, in any supported layout, into the image index."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
