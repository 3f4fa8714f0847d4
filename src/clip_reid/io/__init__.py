"""Custom Kedro datasets."""

from clip_reid.io.checkpoint_dataset import OnnxModelDataset, TorchCheckpointDataset

__all__ = ["OnnxModelDataset", "TorchCheckpointDataset"]
