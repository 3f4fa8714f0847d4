"""Shared fixtures: tiny Market-layout trees written by the tests themselves, and the tiny demo
dataset with demo parameters shrunk to seconds that the stage-level tests train on."""

import copy
from pathlib import Path

import mlflow
import pytest
from builders import base_parameters, write_market_tree

from clip_reid.data.market import build_image_index
from clip_reid.data.synthetic import SyntheticConfig, generate_synthetic_market
from clip_reid.modeling import ClipSpec
from clip_reid.modeling.backbone import ClipBackbone
from clip_reid.project import warning_filters


def pytest_configure(config: pytest.Config) -> None:
    """The third-party warnings a run silences are silenced in the tests too, from the same list
    (clip_reid.project.warning_filters), so the summary shows only warnings someone here can act on.
    As ini filters they come after pytest's own "always show deprecations" filter. mlflow's
    "Add type hints" warning still shows once: mlflow raises it under its own "once" filter,
    which overrides every other (at run time the logging filter drops it)."""
    for known in warning_filters.KNOWN_WARNINGS:
        config.addinivalue_line(
            "filterwarnings",
            f"ignore:{known.message}:{known.category.__name__}:{known.module}\\Z",
        )


@pytest.fixture
def mlflow_tracking(tmp_path: Path):
    """In-process MLflow calls go to a SQLite store under tmp_path; the previous URI comes back."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'tracking.db'}")
    yield
    mlflow.set_tracking_uri(previous)


@pytest.fixture
def tiny_market(tmp_path: Path) -> Path:
    """A 3-train-id, 2-test-id Market tree with junk, a distractor and the archive's quirks."""
    root = write_market_tree(
        tmp_path / "market",
        {
            "train": [
                "0002_c1s1_000451_03.jpg",
                "0002_c2s1_000551_01.jpg",
                "0007_c1s1_000100_01.jpg",
                "0007_c3s2_000200_02.jpg",
                "0010_c6s4_002300_01.jpg",
            ],
            "query": ["0001_c1s1_001051_00.jpg", "0003_c2s1_000151_00.jpg"],
            "gallery": [
                "0001_c1s1_001101_01.jpg",  # same camera as its query: removed per query
                "0001_c3s1_001201_01.jpg",
                "0003_c1s1_000301_02.jpg",
                "0000_c4s1_000001_01.jpg",  # distractor: kept
                "-1_c2s1_000401_03.jpg",  # junk: dropped and counted
            ],
        },
    )
    (root / "bounding_box_test" / "Thumbs.db").write_bytes(b"\x00\x01")
    (root / "gt_bbox").mkdir()
    return root


@pytest.fixture(scope="session")
def tiny_index(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny") / "demo"
    generate_synthetic_market(root, SyntheticConfig(seed=4, num_train_ids=8, num_test_ids=6,
                                                    num_distractors=4, num_junk=1))
    index, _ = build_image_index(root)
    return index


@pytest.fixture
def tiny_params(tmp_path):
    """Demo parameters shrunk to seconds: 2 epochs, small batches, work dirs under tmp_path."""
    params = copy.deepcopy(base_parameters("model", "prompt_learning", "encoder_training"))
    params["dataset"] = {"name": "demo", "root": "data/01_raw/demo_market"}
    params["trainer"]["enable_progress_bar"] = False
    params["model"]["image_size"] = [64, 32]
    stage1 = params["prompt_learning"]
    stage1.update(max_epochs=2, batch_size=16, work_dir=str(tmp_path / "work1"))
    stage2 = params["encoder_training"]
    stage2.update(max_epochs=2, batch_size=16, work_dir=str(tmp_path / "work2"))
    stage2["optimizer"].update(warmup_epochs=1, milestones=[1])
    return params


@pytest.fixture
def tiny_backbone(tiny_params):
    """The clip_backbone the captions pipeline writes when caption fine-tuning is off."""
    return ClipBackbone.of(ClipSpec(**tiny_params["model"]["clip"]))
