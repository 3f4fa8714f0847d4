import pytest
import torch

from clip_reid.modeling import ClipSpec, WeightsError, load_clip
from clip_reid.modeling.backbone import (
    clip_backbone_checkpoint,
    is_finetuned,
    load_clip_backbone,
)

SPEC = ClipSpec(arch="tiny-rn", weights="random", seed=3)


def _round_trip(checkpoint, tmp_path):
    path = tmp_path / "backbone.pt"
    torch.save(checkpoint, path)
    return torch.load(path, weights_only=True)


def test_untuned_backbone_is_the_configured_model(tmp_path):
    checkpoint = _round_trip(clip_backbone_checkpoint(SPEC), tmp_path)
    assert not is_finetuned(checkpoint)
    assert checkpoint["state_dict"] == {}
    loaded = load_clip_backbone(checkpoint, SPEC)
    reference = load_clip(SPEC)
    for (name, value), expected in zip(loaded.state_dict().items(),
                                       reference.state_dict().values(), strict=True):
        assert torch.equal(value, expected), name


def test_tuned_weights_come_back_exactly(tmp_path):
    tuned = load_clip(SPEC)
    with torch.no_grad():
        tuned.token_embedding.weight.add_(1.0)
    checkpoint = _round_trip(clip_backbone_checkpoint(SPEC, tuned, final_loss=0.5), tmp_path)
    assert is_finetuned(checkpoint) and checkpoint["final_loss"] == 0.5
    loaded = load_clip_backbone(checkpoint, SPEC)
    assert torch.equal(loaded.token_embedding.weight, tuned.token_embedding.weight)
    assert not loaded.training


def test_backbone_of_another_architecture_is_refused():
    checkpoint = clip_backbone_checkpoint(SPEC)
    with pytest.raises(ValueError, match="kedro run --pipelines captions"):
        load_clip_backbone(checkpoint, ClipSpec(arch="tiny-vit", weights="random", seed=3))
    # the download folder is not part of the model's identity
    load_clip_backbone(checkpoint, ClipSpec(arch="tiny-rn", weights="random", seed=3,
                                            cache_dir="/elsewhere"))


def test_tuned_weights_that_do_not_fit_are_reported():
    checkpoint = clip_backbone_checkpoint(SPEC, load_clip(SPEC))
    del checkpoint["state_dict"]["token_embedding.weight"]
    with pytest.raises(WeightsError, match="missing 1"):
        load_clip_backbone(checkpoint, SPEC)


def test_not_a_backbone_checkpoint():
    with pytest.raises(ValueError, match="Not a CLIP backbone"):
        load_clip_backbone({"state_dict": {}}, SPEC)
