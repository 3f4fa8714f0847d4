"""Malicious pickles (held): a checkpoint whose pickle would run code is refused at
every point the project loads one, and its code never runs. The payload here creates a file when
unpickled; each load point must fail and leave no such file (and nothing else changed).

Load points: the catalog's checkpoints (TorchCheckpointDataset: reid_model, prompt_learner,
clip_backbone, features, gallery_index), `FeatureExtractor(path)`, `model.clip.weights`,
Lightning's `last.ckpt` when a stage resumes, and the files the search page is given (its
catalog entries are the catalog's)."""

import logging
import pathlib
from contextlib import ExitStack

import pytest
import torch
from kedro.io.core import DatasetError
from kedro_project import copy_project
from toy_training import FINGERPRINT, fit_toy

from clip_reid.app.cli import build_service, parse_args
from clip_reid.inference import FeatureExtractor
from clip_reid.io import TorchCheckpointDataset
from clip_reid.modeling import ClipSpec, WeightsError, load_clip
from clip_reid.modeling.checkpoint_file import CheckpointFileError
from clip_reid.modeling.trainer import resume_checkpoint
from clip_reid.modeling.work_dir import MARKER_FILE, RESUME_FILE

REFUSED = "Weights only load failed"


class Payload:
    """Unpickling this calls ``Path(marker).touch()``: arbitrary code, harmless here."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.fixture
def evil(tmp_path):
    """A checkpoint-shaped file carrying the payload; returns (file, marker the payload makes)."""
    marker = tmp_path / "payload_ran"
    path = tmp_path / "evil.pt"
    torch.save({"config": {"arch": "tiny-rn"}, "normalization": {}, "fingerprint": "x",
                "state_dict": {"w": torch.zeros(2)}, "hook": Payload(marker)}, path)
    return path, marker


def test_the_payload_is_live(evil, tmp_path):
    """The control: loaded the unsafe way, the payload does run (so the refusals below mean
    something)."""
    path, marker = evil
    torch.load(path, weights_only=False)  # deliberately unsafe: the control, on our own file
    assert marker.exists()


def test_catalog_checkpoints_refuse_it(evil, tmp_path, snapshot):
    path, marker = evil
    before = snapshot(tmp_path)
    with pytest.raises(DatasetError, match=f"Cannot load checkpoint {path}: {REFUSED}"):
        TorchCheckpointDataset(filepath=str(path)).load()
    assert not marker.exists() and snapshot(tmp_path) == before


def test_the_feature_extractor_refuses_it(evil, tmp_path, snapshot):
    path, marker = evil
    before = snapshot(tmp_path)
    with pytest.raises(CheckpointFileError, match=rf"Refused to load {path}: .*\({REFUSED}"):
        FeatureExtractor(path)
    assert not marker.exists() and snapshot(tmp_path) == before


def test_clip_weights_refuse_it(evil, tmp_path, snapshot):
    path, marker = evil
    before = snapshot(tmp_path)
    with pytest.raises(WeightsError, match=f"Cannot read CLIP weights {path}: {REFUSED}"):
        load_clip(ClipSpec("tiny-rn", weights=str(path)))
    assert not marker.exists() and snapshot(tmp_path) == before


def test_a_resumed_stage_refuses_it_and_starts_afresh(evil, tmp_path, caplog):
    """A `last.ckpt` with the right settings fingerprint but a payload: moved aside unread."""
    path, marker = evil
    work = tmp_path / "work"
    resume_checkpoint(work, FINGERPRINT)  # the folder as an interrupted run leaves it
    (work / RESUME_FILE).write_bytes(path.read_bytes())
    with caplog.at_level(logging.WARNING, logger="clip_reid.modeling.trainer"):
        module, result = fit_toy(work)
    assert not marker.exists()
    assert module.epochs_started == [0, 1, 2, 3] and result.epochs == 4
    [warning] = [r.getMessage() for r in caplog.records
                 if r.levelno == logging.WARNING and r.name == "clip_reid.modeling.trainer"]
    assert warning.startswith(f"Cannot resume from {work / RESUME_FILE} (UnpicklingError: "
                              f"{REFUSED}")
    [aside] = [p for p in work.iterdir() if p.name != MARKER_FILE]
    assert aside.name.startswith(f"{RESUME_FILE}.unreadable-")


def test_the_search_page_refuses_it_as_its_model(evil, tmp_path, snapshot):
    path, marker = evil
    (tmp_path / "project").mkdir()
    project = copy_project(tmp_path / "project")
    before = snapshot(tmp_path)
    with ExitStack() as stack, pytest.raises(DatasetError,
                                             match=rf"Cannot load checkpoint {path}: {REFUSED}"):
        build_service(parse_args(["--model", str(path)]), stack, project)
    assert not marker.exists() and snapshot(tmp_path) == before
