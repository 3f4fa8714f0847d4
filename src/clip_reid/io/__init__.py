"""Custom Kedro datasets."""

from clip_reid.io.checkpoint_dataset import OnnxModelDataset, TorchCheckpointDataset
from clip_reid.io.milvus_dataset import MilvusGalleryDataset
from clip_reid.io.previous_version import PreviousCheckpointDataset

__all__ = ["MilvusGalleryDataset", "OnnxModelDataset", "PreviousCheckpointDataset",
           "TorchCheckpointDataset"]
