"""inference: identify new images against a labelled gallery, in Kedro and as a served model
(bound for kedro-mlflow in clip_reid.project.served_model)."""

from .pipeline import (
    QUERY_INPUT,
    create_gallery_pipeline,
    create_pipeline,
    create_publish_pipeline,
    create_served_pipeline,
)

__all__ = [
    "QUERY_INPUT",
    "create_gallery_pipeline",
    "create_pipeline",
    "create_publish_pipeline",
    "create_served_pipeline",
]
