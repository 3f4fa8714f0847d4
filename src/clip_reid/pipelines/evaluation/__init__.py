"""evaluation: Rank-k, mAP and mINP of a ReID model on the query/gallery split."""

from .pipeline import create_baseline_pipeline, create_cross_dataset_pipeline, create_pipeline

__all__ = ["create_baseline_pipeline", "create_cross_dataset_pipeline", "create_pipeline"]
