import torch
from kedro.io.core import Version

from clip_reid.io import PreviousCheckpointDataset, TorchCheckpointDataset


def test_none_before_the_first_save_then_the_latest_version(tmp_path):
    filepath = str(tmp_path / "gallery.pt")
    previous = PreviousCheckpointDataset(filepath=filepath, version=Version(None, None))
    assert previous.load() is None
    for step, save_version in enumerate(["2026-01-01T00.00.00.000Z", "2026-01-02T00.00.00.000Z"]):
        output = TorchCheckpointDataset(filepath=filepath, version=Version(None, save_version))
        output.save({"step": torch.tensor(step)})
    previous = PreviousCheckpointDataset(filepath=filepath, version=Version(None, None))
    assert previous.load()["step"].item() == 1
