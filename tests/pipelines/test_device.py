"""The device resolved from the trainer settings (or evaluation.device) reaches every feature
extraction: stage-1 caching, evaluation embedding and batch-norm recalibration."""

import pytest
import torch
from builders import base_parameters, tiny_reid_checkpoint

from clip_reid.evaluation import embedding
from clip_reid.modeling import prompt_learning
from clip_reid.pipelines.evaluation.nodes import extract_query_gallery_features
from clip_reid.pipelines.prompt_learning.nodes import extract_train_image_features


@pytest.fixture
def seen(monkeypatch):
    """Records the device of every extraction instead of running it (no GPU needed)."""
    devices = []

    def extract(model, frame, transform, **kwargs):
        devices.append(("extract", torch.device(kwargs["device"])))
        return torch.zeros(len(frame), 4)

    def recalibrate(model, frame, transform, **kwargs):
        devices.append(("recalibrate", torch.device(kwargs["device"])))

    for module in (embedding, prompt_learning):
        monkeypatch.setattr(module, "extract_features", extract)
        monkeypatch.setattr(module, "recalibrate_batch_norm", recalibrate)
    return devices


@pytest.mark.parametrize(("accelerator", "explicit", "expected"), [
    ("gpu", None, "cuda"), ("cpu", None, "cpu"), ("gpu", "cpu", "cpu"),
])
def test_evaluation_embeds_on_the_resolved_device(tiny_index, tiny_params, seen, accelerator,
                                                  explicit, expected):
    evaluation = dict(base_parameters("evaluation")["evaluation"], device=explicit)
    trainer = dict(tiny_params["trainer"], accelerator=accelerator)
    extract_query_gallery_features(tiny_reid_checkpoint(tiny_index), tiny_index, evaluation,
                                   trainer)
    assert seen == [("extract", torch.device(expected))] * 2


def test_stage1_caching_and_recalibration_run_on_the_trainer_device(tiny_index, tiny_params,
                                                                    tiny_backbone, seen):
    trainer = dict(tiny_params["trainer"], accelerator="gpu")
    extract_train_image_features(tiny_index, tiny_backbone, tiny_params["model"],
                                 tiny_params["prompt_learning"], trainer)
    assert seen == [("recalibrate", torch.device("cuda")), ("extract", torch.device("cuda"))]
