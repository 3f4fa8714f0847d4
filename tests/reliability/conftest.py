"""Fixtures of the fault suite: a snapshot of a folder tree (to show a fault changed nothing
outside the project's own outputs) and the tiny demo the stage-level cases train on."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from builders import REPO_ROOT, base_parameters

from clip_reid.data.market import build_image_index
from clip_reid.data.synthetic import SyntheticConfig, generate_synthetic_market


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


@pytest.fixture(scope="session")
def tiny_index(tmp_path_factory):
    """The demo at its smallest (8 training identities), indexed."""
    root = tmp_path_factory.mktemp("tiny") / "demo"
    generate_synthetic_market(root, SyntheticConfig(seed=4, num_train_ids=8, num_test_ids=6,
                                                    num_distractors=4, num_junk=1))
    index, _ = build_image_index(root)
    return index


@pytest.fixture
def tiny_params(tmp_path):
    """Demo parameters shrunk to seconds: 2 epochs, small batches, work dirs under tmp_path
    (as tests/pipelines/conftest.py)."""
    params = copy.deepcopy(base_parameters("model", "prompt_learning", "encoder_training"))
    params["trainer"]["enable_progress_bar"] = False
    params["model"]["image_size"] = [64, 32]
    stage1 = params["prompt_learning"]
    stage1.update(max_epochs=2, batch_size=16, work_dir=str(tmp_path / "work1"))
    stage2 = params["encoder_training"]
    stage2.update(max_epochs=2, batch_size=16, work_dir=str(tmp_path / "work2"))
    stage2["optimizer"].update(warmup_epochs=1, milestones=[1])
    return params


@pytest.fixture
def mlflow_hook():
    """The project's MLflow hook (kedro-mlflow's MlflowHook subclassed) configured from
    conf/base/mlflow.yml, as after_context_created leaves it; it logs into the active run."""
    from kedro_mlflow.config.kedro_mlflow_config import KedroMlflowConfig

    from clip_reid.mlflow_hooks import TrackedRunHook

    def make(params: dict, env: str = "local") -> TrackedRunHook:
        hook = TrackedRunHook()
        conf = yaml.safe_load((REPO_ROOT / "conf" / "base" / "mlflow.yml").read_text())
        hook.mlflow_config = KedroMlflowConfig(tracking=conf["tracking"])
        hook._params, hook._env = params, env
        hook._already_active_mlflow = True
        return hook

    return make
