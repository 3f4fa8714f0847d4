"""The package root's cli.py is where Kedro finds the project's commands (written in
clip_reid.project.cli): `kedro run` and `python -m clip_reid` both get the project's run."""

import subprocess
import sys

from kedro_project import copy_project, kedro, kedro_env


def test_kedro_and_python_m_find_the_projects_run(tmp_path):
    project = copy_project(tmp_path)
    assert "--verbose" in kedro(project, "run", "--help", timeout=300).stdout
    as_module = subprocess.run([sys.executable, "-m", "clip_reid", "--help"], cwd=project,
                               env=kedro_env(project), capture_output=True, text=True,
                               stdin=subprocess.DEVNULL, timeout=300)
    assert "--verbose" in as_module.stdout, as_module.stderr
