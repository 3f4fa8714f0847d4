"""The device resolved from the trainer settings (or evaluation.device) reaches every feature
extraction: stage-1 caching, evaluation embedding and batch-norm recalibration. Seen on a
machine without a GPU: asked for one, extraction fails reaching CUDA; told ``cpu``, it runs."""

import pytest
import torch
from builders import base_parameters, tiny_reid_checkpoint

from clip_reid.pipelines.evaluation.nodes import extract_query_gallery_features
from clip_reid.pipelines.prompt_learning.nodes import extract_train_image_features

pytestmark = pytest.mark.skipif(torch.cuda.is_available(),
                                reason="observes the device by failing to reach a missing GPU")
NO_CUDA = r"(?i)cuda|nvidia"


def test_evaluation_embeds_on_the_resolved_device(tiny_index, tiny_params):
    evaluation = base_parameters("evaluation")["evaluation"]
    gpu = dict(tiny_params["trainer"], accelerator="gpu")
    checkpoint = tiny_reid_checkpoint(tiny_index)
    with pytest.raises((RuntimeError, AssertionError), match=NO_CUDA):
        extract_query_gallery_features(checkpoint, tiny_index, evaluation, gpu)
    query, gallery = extract_query_gallery_features(
        checkpoint, tiny_index, dict(evaluation, device="cpu"), gpu)
    assert len(query.features) == (tiny_index.split == "query").sum()  # ran, on the CPU


def test_stage1_caching_and_recalibration_run_on_the_trainer_device(tiny_index, tiny_params,
                                                                    tiny_backbone):
    trainer = dict(tiny_params["trainer"], accelerator="gpu")
    with pytest.raises((RuntimeError, AssertionError), match=NO_CUDA):
        extract_train_image_features(tiny_index, tiny_backbone, tiny_params["model"],
                                     tiny_params["prompt_learning"], trainer)
