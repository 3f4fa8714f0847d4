"""encoder_training.sampler reaches the stage-2 P×K sampler (exact by default, or official)."""

import pandas as pd
import pytest
import torch
from builders import run_pipeline

from clip_reid.data.samplers import RandomIdentitySampler
from clip_reid.modeling import ClipSpec
from clip_reid.modeling import encoder_training as encoder_training_module
from clip_reid.modeling.backbone import ClipBackbone
from clip_reid.modeling.prompt_artifacts import TextFeatures
from clip_reid.pipelines import encoder_training


@pytest.mark.parametrize("policy", ["exact", "official"])
def test_the_sampler_parameter_chooses_the_identity_policy(
    tiny_index, tiny_params, monkeypatch, policy
):
    built = []

    def recording_sampler(*args, **kwargs):
        sampler = RandomIdentitySampler(*args, **kwargs)
        built.append(sampler)
        return sampler

    monkeypatch.setattr(encoder_training_module, "RandomIdentitySampler", recording_sampler)
    if policy == "official":
        tiny_params["encoder_training"]["sampler"] = policy
    else:
        assert tiny_params["encoder_training"]["sampler"] == "exact"  # the demo default
    tiny_params["encoder_training"]["max_epochs"] = 1
    text = TextFeatures.of_identities(torch.randn(8, 128))
    inputs = {"image_index": tiny_index, "text_features": text, "params:seed": 0,
              "image_captions": pd.DataFrame(columns=["path", "pid", "caption", "source"]),
              "clip_backbone": ClipBackbone.of(ClipSpec(**tiny_params["model"]["clip"])),
              **{f"params:{k}": v for k, v in tiny_params.items()}}
    run_pipeline(encoder_training.create_pipeline(), inputs)
    assert [sampler.policy for sampler in built] == [policy]
