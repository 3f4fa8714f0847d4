"""gallery_maintenance: delete Milvus gallery crops by image, person or age."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
