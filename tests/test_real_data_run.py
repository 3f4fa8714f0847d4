"""End to end on real pedestrians: `kedro run --pipeline full` on a Market-layout folder of real
CUHK03 crops with no attribute file, set up with nothing but `dataset.source` and `dataset.root`
(plus epoch overrides to keep it short)."""

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from builders import REPO_ROOT, SHARED_DATASETS

from clip_reid.data.market import SPLIT_FOLDERS, parse_market_name

CUHK03 = SHARED_DATASETS / "cuhk03_labeled_market"
EPOCHS = ("prompt_learning.max_epochs=2,prompt_learning.optimizer.warmup_epochs=1,"
          "encoder_training.max_epochs=2,encoder_training.optimizer.warmup_epochs=1,"
          "encoder_training.optimizer.milestones=[1]")


def _by_pid(folder: Path) -> dict[int, list[Path]]:
    images: dict[int, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        name = parse_market_name(path.name)
        if name is not None:
            images.setdefault(name.pid, []).append(path)
    return images


def _real_subset(target: Path, train_ids: int = 20, test_ids: int = 10) -> Path:
    """A few identities of the real CUHK03 (Market layout), all their images, no attribute file."""
    train = _by_pid(CUHK03 / SPLIT_FOLDERS["train"])
    query = _by_pid(CUHK03 / SPLIT_FOLDERS["query"])
    gallery = _by_pid(CUHK03 / SPLIT_FOLDERS["gallery"])
    test_pids = sorted(set(query) & set(gallery))[:test_ids]
    chosen = {"train": {pid: train[pid] for pid in sorted(train)[:train_ids]},
              "query": {pid: query[pid] for pid in test_pids},
              "gallery": {pid: gallery[pid] for pid in test_pids}}
    for split, images in chosen.items():
        folder = target / SPLIT_FOLDERS[split]
        folder.mkdir(parents=True)
        for path in (p for paths in images.values() for p in paths):
            shutil.copy(path, folder / path.name)
    return target


@pytest.mark.skipif(not CUHK03.is_dir(), reason="shared CUHK03 (Market layout) not present")
def test_full_run_on_real_crops_needs_only_source_and_root(tmp_path):
    dataset = _real_subset(tmp_path / "cuhk03_subset")
    assert not (dataset / "market_attribute.mat").exists()
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(REPO_ROOT / name, project / name)
    shutil.copytree(REPO_ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf" / "local").mkdir()
    (project / "src").mkdir()  # kedro expects the source folder; the package is importable
    kedro = Path(sys.executable).with_name("kedro")
    env = {
        "PATH": str(kedro.parent) + ":/usr/bin:/bin",
        "HOME": str(project),
        "PYTHONPATH": str(REPO_ROOT / "src"),  # this checkout's code, whatever is installed
        "CLIP_REID_MLFLOW_URI": f"sqlite:///{project / 'tracking.db'}",
        "KEDRO_DISABLE_TELEMETRY": "true",
        "OMP_NUM_THREADS": "1",
    }
    params = f"dataset.source=local,dataset.root={dataset},{EPOCHS}"
    result = subprocess.run(
        [str(kedro), "run", "--pipeline", "full", "--params", params], cwd=project, env=env,
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=900,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert "No attribute captions: no market_attribute.mat in" in log
    assert "  train    |    20 |      190 |         2" in log
    assert "Test Results - Rank-1: " in log
    with sqlite3.connect(project / "tracking.db") as db:
        metrics = dict(db.execute("SELECT key, value FROM metrics").fetchall())
        statuses = [status for (status,) in db.execute("SELECT status FROM runs")]
    assert statuses == ["FINISHED"]
    assert metrics["data/query_ids"] == 10
    assert 0 <= metrics["evaluation/rank1"] <= 1
