"""Data loss: a stage's `work_dir` pointing at a non-empty folder the project did not
create is refused before any work, and nothing in it is deleted, moved or rewritten.

A stage empties its work folder when it finishes, so it only works in a folder it created (one
holding its marker file) or a new or empty one. The run-start check refuses the folder before the
first node; the stages refuse it again if called as a library."""

from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import torch
from builders import base_parameters, run_pipeline
from reliability.run_start import start_run
from toy_training import FINGERPRINT, fit_toy

from clip_reid.modeling import ClipSpec
from clip_reid.modeling.backbone import ClipBackbone
from clip_reid.modeling.prompt_artifacts import TextFeatures
from clip_reid.modeling.trainer import resume_checkpoint
from clip_reid.modeling.work_dir import MARKER_FILE, RESUME_FILE, WorkDirError
from clip_reid.pipelines import encoder_training, prompt_learning
from clip_reid.pipelines.captions.nodes import prepare_clip_backbone
from clip_reid.project.parameters import validate_parameters

STAGES = ("prompt_learning", "encoder_training", "caption_finetune")
NO_CAPTIONS = pd.DataFrame(columns=["path", "pid", "caption", "source"])


def _precious(folder: Path) -> Path:
    """A user's folder: files, a sub-folder, a symlink and a file named like the project's."""
    (folder / "thesis").mkdir(parents=True)
    (folder / "thesis" / "thesis.tex").write_text("years of work")
    (folder / "best.pt").write_bytes(b"weeks of training")
    (folder / RESUME_FILE).write_bytes(b"someone else's checkpoint")
    (folder / "latest").symlink_to(folder / "best.pt")
    return folder


def _run_start_params(tmp_path: Path) -> dict:
    params = base_parameters("model", "captions", "prompt_learning", "encoder_training",
                             "evaluation", "inference") | {"seed": 0}
    for stage in STAGES:
        params[stage]["work_dir"] = str(tmp_path / "work" / stage)
    return params


@pytest.mark.parametrize("stage", STAGES)
def test_a_foreign_work_dir_is_refused_at_run_start(tmp_path, snapshot, stage):
    """Through the run-start hook, before any node: the error names the key's folder and why."""
    foreign = _precious(tmp_path / "mine")
    params = _run_start_params(tmp_path)
    params[stage]["work_dir"] = str(foreign)
    before = snapshot(tmp_path)
    if stage == "caption_finetune":
        params[stage]["enabled"] = True
    with pytest.raises(WorkDirError) as raised:
        start_run(params)
    message = str(raised.value)
    assert f"work_dir {foreign} is not empty and was not created by clip-reid" in message
    assert f"no {MARKER_FILE} in it" in message and "new or empty folder" in message
    assert snapshot(tmp_path) == before  # not even the other stages' folders were created


def test_a_work_dir_that_is_a_file_is_refused(tmp_path, snapshot):
    params = _run_start_params(tmp_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a folder")
    params["encoder_training"]["work_dir"] = str(notes)
    before = snapshot(tmp_path)
    with pytest.raises(WorkDirError, match=f"work_dir {notes} is a file, not a folder"):
        validate_parameters(params)
    assert snapshot(tmp_path) == before


def test_the_training_loop_refuses_a_foreign_folder_too(tmp_path, snapshot):
    """Called as a library (no run-start check), fit_resumable refuses before writing."""
    mine = _precious(tmp_path / "models")
    before = snapshot(tmp_path)
    with pytest.raises(WorkDirError, match="not created by clip-reid"):
        fit_toy(mine)
    assert snapshot(tmp_path) == before


def _backbone(params):
    return ClipBackbone.of(ClipSpec(**params["model"]["clip"]))


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_refuses_a_foreign_work_dir(tiny_index, tiny_params, tmp_path, snapshot,
                                               stage):
    """The stage nodes themselves, as a pipeline runs them."""
    precious = _precious(tmp_path / "precious")
    common = {"image_index": tiny_index, "params:seed": 0, "clip_backbone": _backbone(tiny_params),
              "image_captions": NO_CAPTIONS,
              **{f"params:{k}": v for k, v in tiny_params.items()}}
    before = snapshot(precious)
    with pytest.raises(WorkDirError, match=f"work_dir {precious} is not empty"):
        if stage == "prompt_learning":
            tiny_params["prompt_learning"]["work_dir"] = str(precious)
            run_pipeline(prompt_learning.create_pipeline(), common)
        elif stage == "encoder_training":
            tiny_params["encoder_training"]["work_dir"] = str(precious)
            text = TextFeatures.of_identities(torch.randn(8, 128))
            run_pipeline(encoder_training.create_pipeline(), common | {"text_features": text})
        else:
            train = tiny_index[tiny_index.split == "train"]
            captions = pd.DataFrame({"path": train.path, "pid": train.pid,
                                     "caption": "a person walking", "source": "csv"})
            finetune = base_parameters("captions")["caption_finetune"] | {
                "enabled": True, "max_epochs": 1, "batch_size": 8, "work_dir": str(precious)}
            prepare_clip_backbone(tiny_index, captions, tiny_params["model"], finetune,
                                  tiny_params["trainer"], 0)
    assert snapshot(precious) == before


def test_a_finished_stage_removes_only_the_files_it_wrote(tmp_path, snapshot):
    """The project's own folder, with a file the user added later: only that file is left."""
    work = tmp_path / "work"
    resume_checkpoint(work, {"lr": 0.1})
    (work / "notes.txt").write_text("added by the user later")
    fit_toy(work)
    assert sorted(p.name for p in work.iterdir()) == [MARKER_FILE, "notes.txt"]
    assert (work / "notes.txt").read_text() == "added by the user later"



# Round two: a folder the project used stays usable, whatever it keeps.

def _damaged_and_finished(work: Path) -> Path:
    """A work folder after a stage moved an unreadable last.ckpt aside and finished."""
    resume_checkpoint(work, FINGERPRINT)
    (work / RESUME_FILE).write_bytes(b"cut short by a full disk")
    fit_toy(work)
    [aside] = [p for p in work.iterdir() if p.name.startswith(f"{RESUME_FILE}.unreadable-")]
    return aside


def test_a_moved_aside_checkpoint_blocks_no_later_run(tmp_path):
    """Every later run (any pipeline) starts, the stage trains there again, and the moved file
    is kept."""
    work = tmp_path / "work" / "encoder_training"
    aside = _damaged_and_finished(work)
    params = _run_start_params(tmp_path)
    for pipeline in ("data_ingestion", "encoder_training", "full"):
        start_run(params, pipeline=pipeline)
    fit_toy(work)
    assert aside.read_bytes() == b"cut short by a full disk"


def test_an_old_folder_holding_only_a_moved_aside_checkpoint_is_accepted(tmp_path):
    """A folder left by an earlier version (moved file, no marker) holds nothing of the user's."""
    work = tmp_path / "work" / "encoder_training"
    work.mkdir(parents=True)
    (work / f"{RESUME_FILE}.unreadable-20261204-101010").write_bytes(b"damaged")
    start_run(_run_start_params(tmp_path))
    fit_toy(work)
    assert (work / f"{RESUME_FILE}.unreadable-20261204-101010").read_bytes() == b"damaged"


def test_a_file_of_yours_in_the_work_folder_blocks_no_later_run(tmp_path):
    work = tmp_path / "work" / "prompt_learning"
    resume_checkpoint(work, FINGERPRINT)
    (work / "notes.txt").write_text("mine")
    fit_toy(work)
    start_run(_run_start_params(tmp_path))
    fit_toy(work)
    assert (work / "notes.txt").read_text() == "mine"


def test_two_checkpoints_moved_aside_in_one_second_are_both_kept(tmp_path):
    work = tmp_path / "work"
    resume_checkpoint(work, FINGERPRINT)
    now = datetime.now()
    earlier = {}  # what a move in this second (or the next) named with second precision
    for moment in (now, now + timedelta(seconds=1)):
        name = f"{RESUME_FILE}.unreadable-{moment:%Y%m%d-%H%M%S}"
        earlier[name] = f"moved at {moment}".encode()
        (work / name).write_bytes(earlier[name])
    for damage in (b"first", b"second"):
        (work / RESUME_FILE).write_bytes(damage)
        assert resume_checkpoint(work, FINGERPRINT) is None
    moved = {p.name: p.read_bytes() for p in work.iterdir() if ".unreadable-" in p.name}
    assert len(moved) == 4 and {b"first", b"second"} <= set(moved.values())
    assert all(moved[name] == content for name, content in earlier.items())


def test_the_refusal_lists_what_it_found_and_names_another_folder(tmp_path):
    foreign = _precious(tmp_path / "mine")
    params = _run_start_params(tmp_path)
    params["encoder_training"]["work_dir"] = str(foreign)
    with pytest.raises(WorkDirError) as raised:
        start_run(params, pipeline="encoder_training")
    message = str(raised.value)
    assert f"it holds best.pt, {RESUME_FILE}, latest, thesis." in message
    assert f"move those files out of {foreign}, or set encoder_training.work_dir" in message
    assert f"--params encoder_training.work_dir={foreign}-2." in message


@pytest.mark.parametrize("pipeline", ["data_ingestion", "captions", "evaluation", "inference"])
def test_only_the_stages_that_run_have_their_folder_checked(tmp_path, pipeline):
    """A foreign folder named by a stage that is not in the run does not stop it; neither does
    caption_finetune's while caption fine-tuning is off."""
    params = _run_start_params(tmp_path)
    for stage in STAGES:
        params[stage]["work_dir"] = str(_precious(tmp_path / stage))
    start_run(params, pipeline=pipeline)
    params["prompt_learning"]["work_dir"] = params["encoder_training"]["work_dir"] = str(
        tmp_path / "new")
    start_run(params, pipeline="full")


def test_an_empty_folder_of_yours_is_not_deleted(tmp_path):
    work = tmp_path / "my_empty_folder"
    work.mkdir()
    fit_toy(work)
    assert work.is_dir() and not list(work.iterdir())
