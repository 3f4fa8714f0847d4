"""Damaged checkpoints: a zero-byte, truncated or garbage file fails with an error
naming it, and a damaged `last.ckpt` in a stage's work folder is moved aside with one WARNING
while the stage starts afresh (nothing is deleted).

`FeatureExtractor(path)` on zero-byte and truncated files: tests/reliability/test_serving_faults.py.
"""

import logging

import pytest
import torch
from kedro.io.core import DatasetError
from toy_training import CrashAt, fit_toy

from clip_reid.io import TorchCheckpointDataset
from clip_reid.modeling import ClipSpec, WeightsError, load_clip
from clip_reid.modeling.weights import read_openai_state_dict
from clip_reid.modeling.work_dir import MARKER_FILE, RESUME_FILE


def _interrupted_work_dir(tmp_path):
    """The work folder a crash at epoch 2 leaves: settings, progress and a real last.ckpt."""
    work = tmp_path / "work"
    with pytest.raises(RuntimeError, match="machine lost"):
        fit_toy(work, [CrashAt(2)])
    assert (work / RESUME_FILE).stat().st_size > 1000
    return work


@pytest.mark.parametrize("damage", ["zero bytes", "truncated", "garbage"])
def test_a_damaged_last_ckpt_is_moved_aside_and_the_stage_starts_afresh(tmp_path, caplog,
                                                                        damage):
    work = _interrupted_work_dir(tmp_path)
    checkpoint = work / RESUME_FILE
    content = {"zero bytes": b"", "truncated": checkpoint.read_bytes()[:700],
               "garbage": b"truncated by a full disk"}[damage]
    checkpoint.write_bytes(content)
    with caplog.at_level(logging.INFO, logger="clip_reid.modeling"):
        module, result = fit_toy(work)
    assert module.epochs_started == [0, 1, 2, 3] and result.epochs == 4
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and r.name == "clip_reid.modeling.trainer"]
    # the stage finished: the moved-aside file is left, in a folder still marked as the project's
    [aside] = [path for path in work.iterdir() if path.name != MARKER_FILE]
    assert aside.name.startswith(f"{RESUME_FILE}.unreadable-")
    assert aside.read_bytes() == content
    assert len(warnings) == 1
    assert warnings[0].startswith(f"Cannot resume from {checkpoint} (")
    assert f"moved it to {aside} and starting this stage afresh" in warnings[0]
    assert any(f"Kept {work}: it holds other files" in r.getMessage() for r in caplog.records)


def _clip_state():
    return load_clip(ClipSpec("tiny-rn", seed=3)).state_dict()


def test_truncated_or_missing_clip_weights_are_named(tmp_path):
    path = tmp_path / "RN50.pt"
    torch.save(_clip_state(), path)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(WeightsError, match=f"Cannot read CLIP weights {truncated}: .* The file "
                       "is truncated or not a CLIP checkpoint; delete it and download it again"):
        read_openai_state_dict(truncated)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(WeightsError, match=f"Cannot read CLIP weights {empty}"):
        load_clip(ClipSpec("tiny-rn", weights=str(empty)))
    with pytest.raises(WeightsError, match="not found: .*nowhere.pt.*model.clip.weights"):
        read_openai_state_dict(tmp_path / "nowhere.pt")


@pytest.mark.parametrize("damage", ["zero bytes", "truncated"])
def test_a_damaged_catalog_checkpoint_is_named(tmp_path, damage):
    path = tmp_path / "reid_model.pt"
    torch.save({"state_dict": {"w": torch.arange(1000.0)}}, path)
    path.write_bytes(b"" if damage == "zero bytes" else path.read_bytes()[:300])
    with pytest.raises(DatasetError, match=f"Cannot load checkpoint {path}: .*The file is "
                       "damaged or not a checkpoint written by this project"):
        TorchCheckpointDataset(filepath=str(path)).load()


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "the file is empty (0 bytes)"),
    (b"hello world\nthis is text", "it is not a checkpoint file (neither a zip archive nor a "
     "pickle; it starts with b'hello world\\nthis')"),
], ids=["zero bytes", "text"])
def test_an_empty_or_text_file_is_named_at_every_load_point(tmp_path, content, reason):
    """Like FeatureExtractor: the catalog and CLIP weights said `: .` for an
    empty file and `: 101.` for a text file."""
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(DatasetError) as raised:
        TorchCheckpointDataset(filepath=str(path)).load()
    assert f"Cannot load checkpoint {path}: {reason}. The file is damaged" in str(raised.value)
    with pytest.raises(WeightsError) as raised:
        read_openai_state_dict(path)
    assert f"Cannot read CLIP weights {path}: {reason}. The file is truncated" in str(
        raised.value)
