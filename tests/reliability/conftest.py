"""Fixtures of the fault suite: a snapshot of a folder tree (to show a fault changed nothing
outside the project's own outputs) and the project's MLflow hook. The tiny demo the
stage-level cases train on is tests/conftest.py's."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from builders import REPO_ROOT


def tree_snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (itself included) with its kind and content: bytes of files,
    targets of symlinks, mode and mtime of everything."""
    entries = {}
    for folder, names, files in os.walk(root):
        for name in [".", *names, *files]:
            path = Path(folder) / name
            info = path.lstat()
            relative = str(path.relative_to(root))
            if path.is_symlink():
                entries[relative] = ("link", os.readlink(path))
            elif path.is_dir():
                entries[relative] = ("dir", info.st_mode, info.st_mtime_ns)
            else:
                entries[relative] = ("file", path.read_bytes(), info.st_mode, info.st_mtime_ns)
    return entries


@pytest.fixture
def snapshot() -> Callable[[Path], dict[str, tuple]]:
    return tree_snapshot


@pytest.fixture
def mlflow_hook():
    """The project's MLflow hook (kedro-mlflow's MlflowHook subclassed) configured from
    conf/base/mlflow.yml, as after_context_created leaves it; it logs into the active run."""
    from kedro_mlflow.config.kedro_mlflow_config import KedroMlflowConfig

    from clip_reid.project.mlflow_hooks import TrackedRunHook

    def make(params: dict, env: str = "local") -> TrackedRunHook:
        hook = TrackedRunHook()
        conf = yaml.safe_load((REPO_ROOT / "conf" / "base" / "mlflow.yml").read_text())
        hook.mlflow_config = KedroMlflowConfig(tracking=conf["tracking"])
        hook._params, hook._env = params, env
        hook._already_active_mlflow = True
        return hook

    return make
