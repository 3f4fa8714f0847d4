"""End to end: `kedro run` as a user types it, in a copy of the project with a tiny dataset."""

import json
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from builders import REPO_ROOT
from kedro_project import TINY_DEMO
from mlflow.tracking import MlflowClient


def _copy_project(root: Path) -> Path:
    """The project's configuration with an extra `e2e` environment shrinking the demo."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(REPO_ROOT / name, root / name)
    shutil.copytree(REPO_ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    (root / "conf" / "e2e").mkdir()
    (root / "conf" / "e2e" / "parameters.yml").write_text(TINY_DEMO)
    (root / "src").mkdir()  # kedro expects the source folder; the package is installed
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return _copy_project(tmp_path_factory.mktemp("project"))


def _kedro(project: Path, *args: str) -> subprocess.CompletedProcess:
    kedro = Path(sys.executable).with_name("kedro")
    env = {
        "PATH": str(kedro.parent) + ":/usr/bin:/bin",
        "HOME": str(project),
        "CLIP_REID_MLFLOW_URI": f"sqlite:///{project / 'tracking.db'}",
        "KEDRO_DISABLE_TELEMETRY": "true",
        "PYTHONPATH": str(REPO_ROOT / "src"),  # this tree's code, wherever it is installed from
    }
    return subprocess.run(
        [str(kedro), *args], cwd=project, env=env, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=1800,
    )


def test_kedro_run_full_tracks_the_run_in_mlflow(project):
    result = _kedro(project, "run", "--pipeline", "full", "--env", "e2e")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "subset   | # ids | # images | # cameras" in log
    assert (project / "data" / "02_intermediate" / "image_index.parquet").is_file()
    reporting = project / "data" / "08_reporting"
    assert list((reporting / "dataset_stats.csv").glob("*/dataset_stats.csv"))

    with sqlite3.connect(project / "tracking.db") as db:
        runs = db.execute("SELECT run_uuid, status FROM runs").fetchall()
        assert [status for _, status in runs] == ["FINISHED"]
        params = dict(db.execute("SELECT key, value FROM params").fetchall())
        metrics = dict(db.execute("SELECT key, value FROM metrics").fetchall())
    assert params["dataset.source"] == "synthetic"
    assert params["dataset.synthetic.num_train_ids"] == "8"
    assert metrics["data/train_ids"] == 8
    assert "encoder_training/loss_epoch" in metrics and "prompt_learning/loss" in metrics
    assert "encoder_training/lr" in metrics
    assert list((project / "data" / "06_models" / "reid_model.pt").glob("*/reid_model.pt"))
    assert "Test Results - Rank-1: " in log
    assert 0 <= metrics["evaluation/rank1"] <= 1 and "evaluation/mAP" in metrics
    assert not [name for name in metrics if name.endswith(("/epoch", "_step"))]
    with sqlite3.connect(project / "tracking.db") as db:
        tags = dict(db.execute("SELECT key, value FROM tags").fetchall())
    assert tags["runner"] == "SequentialRunner"
    assert tags["mlflow.note.content"].startswith("- **prompt_learning** (last epoch): loss ")
    client = MlflowClient(f"sqlite:///{project / 'tracking.db'}")
    assert client.get_model_version_by_alias("clip_reid", "current").run_id == runs[0][0]


def test_only_missing_outputs_skips_trained_stages(project):
    result = _kedro(project, "run", "--pipeline", "full", "--env", "e2e", "--only-missing-outputs")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # Only nodes with MLflow-only outputs (new in every run) run again; the stages are skipped.
    models = project / "data" / "06_models"
    assert len(list((models / "reid_model.pt").glob("*/reid_model.pt"))) == 1
    assert len(list((models / "prompt_learner.pt").glob("*/prompt_learner.pt"))) == 1


def test_pipelines_flag_is_accepted_too(project):
    result = _kedro(project, "run", "--pipelines", "data_ingestion", "--env", "e2e")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.parametrize(("override", "named"), [
    ("evaluation.distanse=cosine", "Unknown parameter evaluation.distanse (set in --params)"),
    ("encoder_training.max_epochs=0", "encoder_training.max_epochs = 0"),
    ("encoder_training.optimizer.base_lr=abc", "encoder_training.optimizer.base_lr = 'abc'"),
])
def test_a_bad_parameter_stops_the_run_before_any_node(tmp_path, override, named):
    """On a fresh copy with nothing trained: the error names the parameter, no node runs."""
    fresh = _copy_project(tmp_path)
    result = _kedro(fresh, "run", "--pipeline", "evaluation", "--params", override)
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert named in " ".join(log.split()), log[-3000:]
    assert "Running node" not in log and "reid_model" not in log


def test_a_foreign_work_dir_is_left_alone(tmp_path):
    fresh = _copy_project(tmp_path / "project")
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "model.pt").write_bytes(b"weeks of training")
    result = _kedro(fresh, "run", "--pipeline", "prompt_learning", "--env", "e2e",
                    "--params", f"prompt_learning.work_dir={precious}")
    assert result.returncode != 0
    assert "not created by clip-reid" in " ".join((result.stdout + result.stderr).split())
    assert [p.name for p in precious.iterdir()] == ["model.pt"]
    assert (precious / "model.pt").read_bytes() == b"weeks of training"


# What a failing notebook shows: an error output, or an error Kedro's IPython extension caught
# and rendered as rich text instead of raising (then nbconvert itself does not fail).
_ERROR_TEXT = re.compile(r"Traceback|\b\w+Error\b|\bERROR\b")


def _output_texts(notebook: dict) -> list[str]:
    texts = []
    for cell in notebook["cells"]:
        for out in cell.get("outputs", []):
            if out["output_type"] == "error":
                texts.append(f"{out['ename']}: {out['evalue']}")
            texts.append("".join(out.get("text", "")))
            texts += ["".join(v) for k, v in out.get("data", {}).items() if k.startswith("text/")]
    return texts


def test_evaluation_notebook_executes_from_its_folder(project):
    """`jupyter nbconvert --execute` in notebooks/ (where Jupyter starts its kernel), on the
    outputs of the full run above: every cell runs, nothing shows an error."""
    env = {"CLIP_REID_MLFLOW_URI": f"sqlite:///{project / 'tracking.db'}",
           "KEDRO_DISABLE_TELEMETRY": "true", "HOME": str(project), "MPLBACKEND": "Agg",
           "PYTHONPATH": str(REPO_ROOT / "src"),
           "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}
    notebooks = project / "notebooks"
    notebooks.mkdir(exist_ok=True)
    shutil.copy(REPO_ROOT / "notebooks" / "evaluation_results.ipynb", notebooks)
    result = subprocess.run(
        [str(Path(sys.executable).with_name("jupyter")), "nbconvert", "--to", "notebook",
         "--execute", "--output", "executed.ipynb", "evaluation_results.ipynb"],
        cwd=notebooks, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
        timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    texts = _output_texts(json.loads((notebooks / "executed.ipynb").read_text()))
    assert [t for t in texts if _ERROR_TEXT.search(t)] == []
    shown = "\n".join(texts)
    assert "Evaluated on demo" in shown and '"rank1": ' in shown
    assert "Rank-1 from the predictions: " in shown
    images = [out for cell in json.loads((notebooks / "executed.ipynb").read_text())["cells"]
              for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]
    assert len(images) == 2  # the CMC curve and the ranked lists
