"""The Ray hook and engine settings without a cluster: a run on the local engines never imports
Ray, and the run-start check refuses settings Ray could not honour."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from kedro_project import copy_project, kedro_env

from clip_reid.engine_settings import ray_address, worker_batch_size
from clip_reid.project.parameters import validate_parameters
from clip_reid.settings_base import SettingsError

# A real `kedro run` of the demo's first stage with the project's hooks, in a fresh interpreter.
RUN_WITHOUT_RAY = """
import sys
from pathlib import Path
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

bootstrap_project(Path.cwd())
with KedroSession.create(env="e2e") as session:
    session.run(pipeline_names=["data_ingestion"])
loaded = sorted(name for name in sys.modules if name == "ray" or name.startswith("ray."))
assert not loaded, f"a local run imported {loaded[:5]}"
print("no ray")
"""


def test_a_run_on_the_local_engines_never_imports_ray(tmp_path):
    project = copy_project(tmp_path)
    done = subprocess.run([sys.executable, "-c", RUN_WITHOUT_RAY], cwd=project,
                          env=kedro_env(project), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=900)
    assert done.returncode == 0 and "no ray" in done.stdout, done.stderr[-3000:]


def test_one_run_joins_one_cluster():
    assert ray_address({"a": ("local", None), "b": ("local", "auto")}) == (False, None)
    assert ray_address({"a": ("ray", "auto"), "b": ("local", "x:1")}) == (True, "auto")
    assert ray_address({"a": ("ray", None), "b": ("ray", None)}) == (True, None)
    with pytest.raises(ValueError, match=r"a.address='auto', b.address='ray://head:10001'"):
        ray_address({"a": ("ray", "auto"), "b": ("ray", "ray://head:10001")})


def test_the_recipe_batch_must_split_into_whole_identities_per_worker():
    assert worker_batch_size(64, 4, 2) == 32
    assert worker_batch_size(64, 4, 16) == 4
    with pytest.raises(SettingsError, match="multiple of 24"):
        worker_batch_size(64, 4, 6)
    with pytest.raises(SettingsError, match="multiple of 12"):
        worker_batch_size(64, 4, 3)


def test_run_start_refuses_a_batch_the_workers_cannot_share(tmp_path):
    from builders import base_parameters

    params = base_parameters("model", "encoder_training") | {"seed": 0}
    for stage in ("caption_finetune", "prompt_learning", "encoder_training"):
        params.setdefault(stage, {})["work_dir"] = str(tmp_path / stage)
    params["trainer"] |= {"engine": "ray", "ray": {"num_workers": 3}}
    params["encoder_training"] |= {"batch_size": 64, "num_instances": 4}
    with pytest.raises(SettingsError, match="trainer.ray.num_workers"):
        validate_parameters(params)
    params["trainer"]["ray"]["num_workers"] = 2
    assert validate_parameters(params)["trainer"].engine == "ray"


def test_conf_base_keeps_the_local_engines():
    from builders import base_parameters

    params = base_parameters("model", "inference", "evaluation")
    assert params["trainer"]["engine"] == "local"
    assert params["inference"]["embedding"]["engine"] == "local"
    assert params["evaluation"]["embedding"]["engine"] == "local"


def test_no_address_starts_a_local_instance_on_loopback_and_stops_it():
    ray = pytest.importorskip("ray")
    from clip_reid.ray_session import connect, disconnect

    # A local instance leaves RAY_AUTH_MODE=token in os.environ; a test cluster started later in
    # this process would inherit it and refuse the tokenless `kedro run` that joins it.
    environment = dict(os.environ)
    try:
        assert connect(None)  # this call started it, so the caller owns the shutdown
        assert not connect(None)  # already connected: nothing to own
        assert ray.cluster_resources()["CPU"] >= 1
        assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
    finally:
        disconnect()
        os.environ.clear()
        os.environ.update(environment)
    assert not ray.is_initialized()
