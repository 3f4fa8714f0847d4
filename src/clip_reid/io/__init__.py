"""Custom Kedro datasets."""

from clip_reid.io.checkpoint_dataset import TorchCheckpointDataset

__all__ = ["TorchCheckpointDataset"]
