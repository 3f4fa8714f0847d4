"""inference: identify new images against a labelled gallery, in Kedro and as a served model."""

from .pipeline import (
    QUERY_INPUT,
    create_gallery_pipeline,
    create_pipeline,
    create_publish_pipeline,
    create_served_pipeline,
)
from .served_model import SERVED_MODEL_NAME, served_full

__all__ = [
    "QUERY_INPUT",
    "SERVED_MODEL_NAME",
    "create_gallery_pipeline",
    "create_pipeline",
    "create_publish_pipeline",
    "create_served_pipeline",
    "served_full",
]
