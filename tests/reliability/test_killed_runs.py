"""Killed runs: an MLflow run whose process was SIGKILLed (or died with the machine)
cannot close itself and would stay RUNNING forever. The next run on the same machine marks it
KILLED with one WARNING line; runs of live processes and of other machines are left alone.

End to end (a `kedro run --pipeline full` SIGKILLed mid-run, then another `kedro run`):
tests/project/test_mlflow_hooks.py::test_killed_run_is_marked_killed_by_the_next_run."""

import logging
import subprocess
import sys

import mlflow
import pytest
from kedro_project import run_params
from mlflow.tracking import MlflowClient

from clip_reid.project import mlflow_hooks
from clip_reid.project.mlflow_hooks import (
    HOST_TAG,
    PID_START_TAG,
    PID_TAG,
    mark_killed_runs,
    process_tags,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One tracking database for the module (creating one takes seconds); the tracking URI is
    restored afterwards."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('tracking') / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    yield MlflowClient(uri)
    mlflow.set_tracking_uri(previous)


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])


def _tags_of(process: subprocess.Popen) -> dict[str, str]:
    """The tags the hook gives a run of ``process`` (process_tags as it would compute them)."""
    return {**process_tags(), PID_TAG: str(process.pid),
            PID_START_TAG: mlflow_hooks._process_start(process.pid)}


def test_mark_killed_runs_only_touches_dead_processes_of_this_machine(store):
    experiment = store.create_experiment("only_dead")
    here = process_tags()
    dead, alive = _sleeper(), _sleeper()
    runs = {}
    for name, tags in {
        "killed": {HOST_TAG: here[HOST_TAG], PID_TAG: str(dead.pid)},
        "alive": {HOST_TAG: here[HOST_TAG], PID_TAG: str(alive.pid)},
        "pid_reused": {**here, PID_TAG: str(alive.pid)},  # this pid, another start time
        "other_machine": {HOST_TAG: "elsewhere", PID_TAG: str(dead.pid)},
        "untagged": {},
    }.items():
        runs[name] = store.create_run(experiment, tags=tags, run_name=name).info.run_id
    dead.kill()  # SIGKILL
    dead.wait()
    try:
        marked = mark_killed_runs(store, experiment)
    finally:
        alive.kill()
        alive.wait()
    assert sorted(marked) == sorted([runs["killed"], runs["pid_reused"]])
    status = {name: store.get_run(run_id).info.status for name, run_id in runs.items()}
    assert status == {"killed": "KILLED", "alive": "RUNNING", "pid_reused": "KILLED",
                      "other_machine": "RUNNING", "untagged": "RUNNING"}


def test_the_next_run_marks_a_sigkilled_run_killed(store, mlflow_hook, caplog):
    """A `full` run's process is SIGKILLed; the next run's hook marks it, with one WARNING."""
    experiment = store.create_experiment("next_run")
    victim = _sleeper()
    killed_id = store.create_run(experiment, tags=_tags_of(victim), run_name="full").info.run_id
    assert mark_killed_runs(store, experiment) == []  # alive: left alone
    victim.kill()  # SIGKILL: the run cannot end itself
    victim.wait()
    assert store.get_run(killed_id).info.status == "RUNNING"
    with (caplog.at_level(logging.WARNING, logger="clip_reid.project.mlflow_hooks"),
          mlflow.start_run(experiment_id=experiment) as run):
        mlflow_hook({}).before_pipeline_run(run_params=run_params("data_ingestion"),
                                            pipeline=None, catalog=None)
    assert store.get_run(killed_id).info.status == "KILLED"
    assert store.get_run(run.info.run_id).info.status == "FINISHED"
    [warning] = [r.getMessage() for r in caplog.records
                 if r.name == "clip_reid.project.mlflow_hooks"]
    assert warning == (f"MLflow run {killed_id} ('full') was left RUNNING by process "
                       f"{victim.pid}, which no longer exists on this machine (killed?): "
                       "marked KILLED.")
