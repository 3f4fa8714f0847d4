from dataclasses import replace

import torch

from clip_reid.modeling import (
    ClipReidModel,
    ClipSpec,
    load_clip,
)
from clip_reid.modeling.model_settings import ModelSettings


def _model(arch="tiny-rn", **overrides):
    settings = ModelSettings(clip=ClipSpec(arch), image_size=(128, 64))
    config = replace(settings.reid_config(num_classes=7, num_cameras=0), **overrides)
    return ClipReidModel(config, load_clip(config.clip))


def test_train_outputs_and_heads():
    model = _model().train()
    out = model(torch.randn(4, 3, 128, 64))
    assert [tuple(x.shape) for x in out.logits] == [(4, 7), (4, 7)]
    assert [x.shape[1] for x in out.features] == [256, 512, 128]
    assert torch.equal(out.image_projection, out.features[2])
    assert model.classifier.bias is None and model.classifier_proj.bias is None
    assert not model.bottleneck.bias.requires_grad
    assert model.classifier.weight.std() < 0.002


def test_eval_feature_before_or_after_neck():
    images = torch.randn(3, 3, 128, 64)
    model = _model().eval()
    before = model(images)
    assert before.shape == (3, model.feature_dim) == (3, 640)
    features = model.image_encoder(images)
    assert torch.allclose(before, torch.cat([features.final, features.projection], 1))
    after = _model(neck_feat="after").eval()
    after.load_state_dict(model.state_dict())
    after.bottleneck.running_mean.fill_(1.0)
    after.bottleneck_proj.running_mean.fill_(1.0)
    assert torch.allclose(after(images), before - 1.0, atol=1e-4)
