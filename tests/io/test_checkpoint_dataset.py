from pathlib import Path

import pytest
import torch
from kedro.io.core import DatasetError, Version

from clip_reid.io import OnnxModelDataset, TorchCheckpointDataset


def _checkpoint() -> dict:
    return {"config": {"arch": "tiny-rn", "num_classes": 3}, "state_dict": {"w": torch.arange(6.0)}}


def test_save_then_load_returns_the_same_dict(tmp_path):
    dataset = TorchCheckpointDataset(filepath=str(tmp_path / "model.pt"))
    dataset.save(_checkpoint())
    loaded = dataset.load()
    assert loaded["config"] == _checkpoint()["config"]
    assert torch.equal(loaded["state_dict"]["w"], torch.arange(6.0))


def test_versioned_saves_keep_every_version_and_load_latest(tmp_path):
    path = str(tmp_path / "model.pt")
    TorchCheckpointDataset(filepath=path, version=Version(None, "2026-01-01T00.00.00.000Z")).save(
        {"v": 1}
    )
    TorchCheckpointDataset(filepath=path, version=Version(None, "2026-01-02T00.00.00.000Z")).save(
        {"v": 2}
    )
    assert TorchCheckpointDataset(filepath=path, version=Version(None, None)).load() == {"v": 2}
    assert len(list(Path(path).iterdir())) == 2


def test_failed_save_leaves_no_file_that_looks_complete(tmp_path, monkeypatch):
    path = str(tmp_path / "model.pt")
    dataset = TorchCheckpointDataset(filepath=path, version=Version(None, None))

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", explode)
    with pytest.raises(DatasetError, match="Failed while saving"):
        dataset.save(_checkpoint())
    assert not TorchCheckpointDataset(filepath=path, version=Version(None, None)).exists()
    assert [p for p in Path(path).rglob("*") if p.is_file()] == []


def test_non_dict_is_rejected(tmp_path):
    with pytest.raises(DatasetError, match="must be a dict"):
        TorchCheckpointDataset(filepath=str(tmp_path / "m.pt")).save(torch.zeros(1))


def test_onnx_dataset_round_trips_bytes_and_refuses_empty(tmp_path):
    dataset = OnnxModelDataset(filepath=str(tmp_path / "model.onnx"))
    dataset.save(b"\x08\x07onnx")
    assert dataset.load() == b"\x08\x07onnx"
    with pytest.raises(DatasetError, match="non-empty bytes"):
        OnnxModelDataset(filepath=str(tmp_path / "other.onnx")).save(b"")


TEXT_FEATURES = "clip_reid.modeling.prompt_artifacts.TextFeatures"


def test_an_artifact_entry_saves_a_plain_dict_and_loads_the_typed_object(tmp_path):
    from clip_reid.modeling.prompt_artifacts import TextFeatures

    path = tmp_path / "text_features.pt"
    dataset = TorchCheckpointDataset(filepath=str(path), artifact=TEXT_FEATURES)
    dataset.save(TextFeatures.of_identities(torch.eye(3)))
    assert set(torch.load(path, weights_only=True)) == {"features", "labels"}
    loaded = dataset.load()
    assert isinstance(loaded, TextFeatures) and torch.equal(loaded.features, torch.eye(3))


def test_an_artifact_entry_refuses_other_data_and_other_files(tmp_path):
    path = tmp_path / "text_features.pt"
    dataset = TorchCheckpointDataset(filepath=str(path), artifact=TEXT_FEATURES)
    with pytest.raises(DatasetError, match="holds a clip_reid.modeling.prompt_artifacts.Text"):
        dataset.save({"features": torch.eye(3)})
    assert not path.exists()
    TorchCheckpointDataset(filepath=str(path)).save(_checkpoint())
    with pytest.raises(DatasetError, match=f"{path} is not what train_prompt_learner writes"):
        dataset.load()
