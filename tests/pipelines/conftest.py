"""A tiny demo dataset and tiny training parameters shared by the training pipeline tests."""

import copy

import pytest
from builders import base_parameters

from clip_reid.data.market import build_image_index
from clip_reid.data.synthetic import SyntheticConfig, generate_synthetic_market
from clip_reid.modeling import ClipSpec
from clip_reid.modeling.backbone import clip_backbone_checkpoint


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
    return clip_backbone_checkpoint(ClipSpec(**tiny_params["model"]["clip"]))
