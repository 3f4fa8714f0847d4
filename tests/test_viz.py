"""kedro viz shows each stage as a collapsible modular pipeline and every dataset in a layer."""

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from builders import REPO_ROOT
from ctrl_c import interruptible_popen
from kedro_project import copy_project, kedro_command, kedro_env, warning_records

VIZ_JSON = """
import json, sys
from pathlib import Path
from kedro_viz.api.rest.responses.pipelines import get_kedro_project_json_data
from kedro_viz.server import load_and_populate_data
load_and_populate_data(Path(sys.argv[1]))
print("VIZ" + json.dumps(get_kedro_project_json_data("full")))
"""
STAGES = {"data_ingestion", "captions", "prompt_learning", "encoder_training", "evaluation",
          "inference"}


def test_full_is_drawn_as_stages_with_layers(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KEDRO_DISABLE_TELEMETRY": "true",
           "PYTHONPATH": str(REPO_ROOT / "src"),
           "CLIP_REID_MLFLOW_URI": f"sqlite:///{tmp_path / 'tracking.db'}"}
    result = subprocess.run([sys.executable, "-c", VIZ_JSON, str(REPO_ROOT)], env=env,
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    lines = [line for line in result.stdout.splitlines() if line.startswith("VIZ")]
    assert lines, result.stdout[-2000:] + result.stderr[-3000:]
    graph = json.loads(lines[0][3:])
    assert STAGES <= set(graph["modular_pipelines"])
    root_children = {child["id"] for child in graph["modular_pipelines"]["__root__"]["children"]}
    assert STAGES <= root_children
    tasks = [node for node in graph["nodes"] if node["type"] == "task"]
    assert all(node["modular_pipelines"] for node in tasks)  # no node left outside a stage
    data = [node for node in graph["nodes"] if node["type"] == "data"]
    assert [node["name"] for node in data if not node.get("layer")] == []
    assert graph["layers"] == ["raw", "intermediate", "primary", "feature", "model_input",
                               "models", "model_output", "reporting"]


def _free_port() -> int:
    """A free loopback port below 49152: kedro viz refuses the ephemeral range the OS hands out
    for port 0."""
    for port in random.Random().sample(range(20000, 49000), 50):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 49000")


def test_kedro_viz_starts_without_warnings(tmp_path):
    """`kedro viz` as a user starts it: the page's data is served, and no WARNING was printed
    (kedro-mlflow's 24 "no longer a PipelineML" lines, FastAPI's ORJSONResponse notice)."""
    project = copy_project(tmp_path)
    port = _free_port()
    viz = interruptible_popen(kedro_command("viz", "run", "--no-browser", "--port", str(port)),
                           cwd=project, env=kedro_env(project), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)  # its server is a child process: stop both
    try:
        deadline = time.monotonic() + 600
        while True:
            if viz.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"kedro viz did not start:\n{viz.communicate()[0][-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/main", timeout=5) as r:
                    assert r.status == 200
                    break
            except OSError:
                time.sleep(1)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(viz.pid, signal.SIGINT)  # Ctrl-C, as a user stops it
        try:
            log, _ = viz.communicate(timeout=60)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(viz.pid, signal.SIGKILL)
    assert warning_records(log) == [], log[-3000:]
