"""A throwaway copy of the project to run `kedro run` in, as a user types it, in a subprocess."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from builders import REPO_ROOT

# A demo small enough that a whole `full` run takes seconds (shared by the e2e tests).
TINY_DEMO = """
dataset:
  synthetic:
    num_train_ids: 8
    num_test_ids: 6
    num_distractors: 4
    num_junk: 2
model:
  image_size: [64, 32]
trainer:
  enable_progress_bar: false
prompt_learning:
  max_epochs: 2
  batch_size: 16
encoder_training:
  max_epochs: 2
  batch_size: 16
  optimizer:
    warmup_epochs: 1
    milestones: [1]
"""


def copy_project(root: Path) -> Path:
    """The project's configuration in ``root`` plus an ``e2e`` environment shrinking the demo."""
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(REPO_ROOT / name, root / name)
    shutil.copytree(REPO_ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    (root / "conf" / "e2e").mkdir()
    (root / "conf" / "e2e" / "parameters.yml").write_text(TINY_DEMO)
    (root / "src").mkdir()  # kedro expects the source folder; the package comes from REPO_ROOT
    return root


def run_params(pipeline: str, runtime_params: dict | None = None) -> dict:
    """Kedro's run parameters (what hooks receive) of `kedro run --pipeline <pipeline>
    [--params ...]`."""
    return {"runtime_params": runtime_params or {}, "pipeline_names": [pipeline], "tags": None,
            "node_names": None, "from_nodes": None, "to_nodes": None, "from_inputs": None,
            "load_versions": None}


def kedro_env(project: Path) -> dict[str, str]:
    """A clean environment: this checkout's package, tracking in the copy, wide log lines."""
    return {
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "HOME": str(project),
        "PYTHONPATH": str(REPO_ROOT / "src"),
        "CLIP_REID_MLFLOW_URI": f"sqlite:///{project / 'tracking.db'}",
        "KEDRO_DISABLE_TELEMETRY": "true",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }


def kedro_command(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("kedro")), *args]


def kedro(project: Path, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run ``kedro <args>`` in ``project`` and capture its output."""
    return subprocess.run(
        kedro_command(*args), cwd=project, env=kedro_env(project), capture_output=True,
        text=True, stdin=subprocess.DEVNULL, timeout=timeout,
    )


def output(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


# A log record as conf/logging.yml prints it without a terminal ("2026-12-04 22:48:26 WARNING
# name: message") or as mlflow's own loggers do ("2026/12/04 04:45:54 WARNING mlflow.pyfunc: ...");
# a multi-line message (a warning's source line) continues on indented lines.
_RECORD = re.compile(r"^\d{4}[-/]\d\d[-/]\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


def warning_records(log: str) -> list[str]:
    """The text of every WARNING record in a `kedro` command's log."""
    records: list[list[str]] = []
    level = None
    for line in log.splitlines():
        if match := _RECORD.match(line):
            level = match[1]
            if level == "WARNING":
                records.append([line])
        elif level == "WARNING" and line[:1].isspace():
            records[-1].append(line)
        else:
            level = None
    return [" ".join(part.strip() for part in record) for record in records]
