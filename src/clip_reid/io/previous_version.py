"""The dataset that hands a node the previous version of its own output."""

from __future__ import annotations

from typing import Any

from kedro.io.core import VersionNotFoundError

from clip_reid.io.checkpoint_dataset import TorchCheckpointDataset


class PreviousCheckpointDataset(TorchCheckpointDataset):
    """The latest saved version of a versioned checkpoint, or ``None`` before the first save.

    Point it at the same ``filepath`` as a node's versioned output to let the node reuse what
    the last run computed (a node cannot read its own output: Kedro pipelines are acyclic)::

        previous_gallery_index:
          type: clip_reid.io.PreviousCheckpointDataset
          filepath: data/07_model_output/gallery_index.pt
          versioned: true
    """

    def load(self) -> dict[str, Any] | None:
        try:
            self._get_load_path()
        except VersionNotFoundError:
            return None
        return super().load()
