"""MLflow records end to end: runs tagged, a SIGKILLed `kedro run` marked KILLED by the next one,
no credentials in the tracking database (#14, #16). The fast fault cases (redaction, killed-run
detection through the hook) are in tests/reliability/test_secrets.py and test_killed_runs.py."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from ctrl_c import interruptible_popen
from kedro_project import (
    copy_project,
    kedro,
    kedro_command,
    kedro_env,
    output,
    warning_records,
)
from mlflow.tracking import MlflowClient

from clip_reid.project.mlflow_hooks import (
    HOST_TAG,
    PID_TAG,
    run_tags,
    runner_name,
)

SECRET_URL = "https://alice:s3cr3t-pw@example.org/market.zip?token=t0k3n-abc&v=2"


def test_run_tags_name_pipeline_env_dataset_backbone():
    params = {"dataset": {"name": "market1501", "root": "data/01_raw/Market"},
              "model": {"clip": {"arch": "RN50", "weights": "openai"}}}
    assert run_tags({"pipeline_names": ["evaluation"]}, params, "market1501_rn50") == {
        "pipeline": "evaluation", "env": "market1501_rn50", "dataset": "market1501",
        "dataset_root": "data/01_raw/Market", "evaluated_dataset": "market1501",
        "backbone": "RN50", "backbone_weights": "openai"}
    cross = params | {"evaluation": {"dataset": {"name": "cuhk03_np", "root": "/data/cuhk03"}}}
    cross_tags = run_tags({"pipeline_names": ["cross_dataset_evaluation"]}, cross, None)
    assert (cross_tags["evaluated_dataset"], cross_tags["evaluated_dataset_root"]) == (
        "cuhk03_np", "/data/cuhk03")
    # only a root: the folder is read with the Market layout of any camera count, whatever the
    # training set's name
    root_only = params | {"evaluation": {"dataset": {"root": "/data/viper"}}}
    root_tags = run_tags({"pipeline_names": ["cross_dataset_evaluation"]}, root_only, None)
    assert (root_tags["evaluated_dataset"], root_tags["evaluated_dataset_root"]) == (
        "demo", "/data/viper")
    plain = run_tags({"pipeline_names": ["evaluation"]}, cross, None)
    assert plain["evaluated_dataset"] == "market1501"  # plain evaluation: the training set
    assert "evaluated_dataset_root" not in plain
    assert run_tags({"pipeline_names": None}, {}, None) == {"pipeline": "__default__"}
    assert "image_tower" not in run_tags({}, params, None)  # CLIP's own tower
    tower = {"model": {"clip": {"arch": "tiny-rn", "image_tower": "mobilenetv2_100",
                                "image_weights": "package"}}}
    assert run_tags({}, tower, None).items() >= {"image_tower": "mobilenetv2_100",
                                                 "image_weights": "package"}.items()
    clip_tower = {"model": {"clip": {"image_tower": "clip", "image_weights": "random"}}}
    assert not {"image_tower", "image_weights"} & set(run_tags({}, clip_tower, None))


def test_the_runner_tag_is_a_name_not_an_object_repr():
    from kedro.runner import SequentialRunner

    assert runner_name(str(SequentialRunner())) == "SequentialRunner"  # what Kedro records
    assert runner_name(SequentialRunner) == "SequentialRunner"
    assert runner_name(None) == "None"


def _runs(db: Path) -> list[tuple[str, str, str]]:
    """(run id, status, pid tag) of every run in the tracking database (none before it exists)."""
    try:
        with sqlite3.connect(db) as connection:
            return connection.execute(
                "SELECT r.run_uuid, r.status, t.value FROM runs r LEFT JOIN tags t "
                "ON t.run_uuid = r.run_uuid AND t.key = ?", (PID_TAG,)).fetchall()
    except sqlite3.OperationalError:  # not created yet, or locked by the writer
        return []


@pytest.fixture(scope="module")
def killed_then_rerun(tmp_path_factory):
    """A `full` run killed with SIGKILL once tracked, then an ingestion run with a secret URL."""
    project = copy_project(tmp_path_factory.mktemp("tracked"))
    db = project / "tracking.db"
    victim = subprocess.Popen(kedro_command("run", "--pipelines", "full", "--env", "e2e"),
                              cwd=project, env=kedro_env(project), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 1500
    try:
        while not any(status == "RUNNING" and pid == str(victim.pid)
                      for _, status, pid in _runs(db)):
            assert victim.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "the run never showed up in MLflow"
            time.sleep(0.5)
        os.kill(victim.pid, signal.SIGKILL)
    finally:
        victim.kill()
        victim.wait()
    [(killed_id, status, _)] = _runs(db)
    assert status == "RUNNING"  # what a SIGKILL leaves behind
    result = kedro(project, "run", "--pipelines", "data_ingestion", "--env", "e2e",
                   "--params", f"dataset.download.url={SECRET_URL}")
    return project, killed_id, result


def test_killed_run_is_marked_killed_by_the_next_run(killed_then_rerun):
    project, killed_id, result = killed_then_rerun
    assert result.returncode == 0, output(result)[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'tracking.db'}")
    assert client.get_run(killed_id).info.status == "KILLED"
    [record] = [r for r in warning_records(output(result)) if killed_id in r]
    words = re.sub(r"\s+\S+\.py:\d+", "", record).split()  # rich puts file:line mid-message
    text = " ".join(words)
    assert "('full') was left RUNNING by process" in text and "marked KILLED" in text


def test_run_is_tagged_and_records_no_credentials(killed_then_rerun):
    project, killed_id, result = killed_then_rerun
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'tracking.db'}")
    [run] = [r for r in client.search_runs(client.get_experiment_by_name("clip_reid").experiment_id)
             if r.info.run_id != killed_id]
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert {key: tags[key] for key in ("pipeline", "env", "dataset", "backbone")} == {
        "pipeline": "data_ingestion", "env": "e2e", "dataset": "demo", "backbone": "tiny-rn"}
    assert tags["dataset_root"] == "data/01_raw/demo_market"
    assert tags[HOST_TAG] == socket.gethostname()
    url = "https://***@example.org/market.zip?token=***&v=2"
    assert run.data.params["dataset.download.url"] == url
    assert url in tags["runtime_params"]
    with sqlite3.connect(project / "tracking.db") as connection:
        dump = "\n".join(connection.iterdump())
    assert "s3cr3t" not in dump and "t0k3n" not in dump


def test_ctrl_c_in_stage_2_says_how_to_resume_and_marks_the_run_killed(tmp_path):
    """Ctrl-C while stage 2 trains: the resume advice, exit code 1 and a KILLED MLflow run (not
    Lightning's sys.exit, which left the run FINISHED after 2 of 40 epochs)."""
    project = copy_project(tmp_path)
    progress = project / "data/06_models/work/encoder_training/progress.json"
    run = interruptible_popen(
        kedro_command("run", "--pipelines", "full", "--env", "e2e",
                      "--params", "encoder_training.max_epochs=500"),
        cwd=project, env=kedro_env(project), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 900
    try:
        while not progress.is_file():
            assert run.poll() is None, run.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "stage 2 never finished an epoch"
            time.sleep(0.5)
        run.send_signal(signal.SIGINT)
        log, _ = run.communicate(timeout=300)
    finally:
        run.kill()
    assert run.returncode == 1, log[-3000:]
    assert re.search(r"TrainingInterrupted.*: Training was interrupted \(Ctrl-C\) at epoch \d+ "
                     r"of 500\. Run the same command again to resume from "
                     r"data/06_models/work/encoder_training/last\.ckpt", log), log[-3000:]
    [(_, status, _)] = _runs(project / "tracking.db")
    assert status == "KILLED"


def test_the_run_description_opens_on_the_losses_and_results():
    from clip_reid.project.mlflow_hooks import run_summary

    metrics = {"prompt_learning/loss": 1.23456, "encoder_training/loss_epoch": 6.5,
               "encoder_training/id_loss_epoch": 3.25, "encoder_training/lr": 0.001,
               "evaluation/rank1": 0.4607, "evaluation/mAP": 0.3929, "data/train_ids": 8.0}
    assert run_summary(metrics) == (
        "- **prompt_learning** (last epoch): loss 1.2346\n"
        "- **encoder_training** (last epoch): loss 6.5000, id_loss 3.2500\n"
        "- **evaluation**: Rank-1 46.07%, mAP 39.29%")
    assert run_summary({"data/train_ids": 8.0}) == ""
