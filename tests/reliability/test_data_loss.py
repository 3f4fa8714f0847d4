"""Data loss (issue 14): a stage's `work_dir` pointing at a non-empty folder the project did not
create is refused before any work, and nothing in it is deleted, moved or rewritten.

A stage empties its work folder when it finishes, so it only works in a folder it created (one
holding its marker file) or a new or empty one. The run-start check refuses the folder before the
first node; the stages refuse it again if called as a library."""

from pathlib import Path

import pandas as pd
import pytest
import torch
from builders import base_parameters, run_pipeline
from kedro.io import DataCatalog, MemoryDataset
from toy_training import fit_toy

from clip_reid.hooks import ParameterValidationHook
from clip_reid.modeling import ClipSpec
from clip_reid.modeling.backbone import clip_backbone_checkpoint
from clip_reid.modeling.trainer import MARKER_FILE, RESUME_FILE, WorkDirError, resume_checkpoint
from clip_reid.pipelines import encoder_training, prompt_learning
from clip_reid.pipelines.captions.nodes import prepare_clip_backbone
from clip_reid.pipelines.parameters import validate_parameters

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
    catalog = DataCatalog({"parameters": MemoryDataset(params)})
    with pytest.raises(WorkDirError) as raised:
        ParameterValidationHook().before_pipeline_run({"runtime_params": {}}, catalog)
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
    return clip_backbone_checkpoint(ClipSpec(**params["model"]["clip"]))


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
            text = {"features": torch.randn(8, 128), "labels": torch.arange(8)}
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
    assert sorted(p.name for p in work.iterdir()) == ["notes.txt"]
    assert (work / "notes.txt").read_text() == "added by the user later"

