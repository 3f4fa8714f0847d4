"""The run's CPU thread count: chosen from the free cores, an explicit choice wins, applied."""

import logging
import os

import pytest
import torch
from kedro.io import DataCatalog, MemoryDataset

from clip_reid.project.hooks import ThreadsHook
from clip_reid.project.threads import (
    THREAD_ENV_VARS,
    ThreadChoice,
    choose_threads,
    physical_cores,
    usable_cores,
)


@pytest.mark.parametrize(("cores", "physical", "load", "expected"), [
    (2, 2, 3.0, 1),     # the case: 2 cores and three busy processes beside the run
    (2, 2, 0.1, 2),     # an idle laptop uses both cores
    (8, 4, 0.2, 4),     # never more than the physical cores (hyper-threads share their units)
    (8, 8, 5.4, 3),     # what is left free, rounded
    (4, 4, 40.0, 1),    # at least one
])
def test_auto_takes_the_free_physical_cores(cores, physical, load, expected):
    choice = choose_threads(None, environ={}, cores=cores, physical=physical, load=load)
    assert choice.threads == expected
    assert f"load average {load:.2f}" in choice.reason


def test_an_explicit_setting_wins_then_the_users_omp_num_threads():
    busy = {"cores": 2, "physical": 2, "load": 9.0}
    assert choose_threads(2, environ={"OMP_NUM_THREADS": "1"}, **busy) == ThreadChoice(
        2, "trainer.num_threads = 2")
    assert choose_threads(None, environ={"OMP_NUM_THREADS": "3"}, **busy).threads == 3
    assert choose_threads(None, environ={"OMP_NUM_THREADS": "lots"}, **busy).threads == 1


def test_this_machine_reports_its_cores():
    assert 1 <= physical_cores() <= usable_cores() <= (os.cpu_count() or 1)


def test_the_run_start_hook_applies_and_logs_the_choice_once(monkeypatch, caplog):
    for name in THREAD_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    catalog = DataCatalog({"parameters": MemoryDataset({"trainer": {"num_threads": 1}})})
    try:
        with caplog.at_level(logging.INFO, logger="clip_reid.project.threads"):
            ThreadsHook().before_pipeline_run(catalog)
        assert torch.get_num_threads() == 1
        assert all(os.environ[name] == "1" for name in THREAD_ENV_VARS)  # for child processes
        lines = [r.getMessage() for r in caplog.records if r.name == "clip_reid.project.threads"]
        assert lines == ["Computing with 1 CPU thread (trainer.num_threads = 1). Set "
                         "trainer.num_threads to choose; on a shared machine 1 is safest."]
    finally:
        torch.set_num_threads(before)

