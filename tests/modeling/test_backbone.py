import pytest
import torch

from clip_reid.modeling import ClipSpec, WeightsError, load_clip
from clip_reid.modeling.backbone import ClipBackbone

SPEC = ClipSpec(arch="tiny-rn", weights="random", seed=3)


def _round_trip(backbone: ClipBackbone, tmp_path) -> ClipBackbone:
    path = tmp_path / "backbone.pt"
    torch.save(backbone.to_state(), path)
    return ClipBackbone.from_state(torch.load(path, weights_only=True))


def test_untuned_backbone_is_the_configured_model(tmp_path):
    backbone = _round_trip(ClipBackbone.of(SPEC), tmp_path)
    assert not backbone.finetuned and backbone.to_state()["state_dict"] == {}
    loaded = backbone.clip_model(SPEC)
    reference = load_clip(SPEC)
    for (name, value), expected in zip(loaded.state_dict().items(),
                                       reference.state_dict().values(), strict=True):
        assert torch.equal(value, expected), name


def test_tuned_weights_come_back_exactly(tmp_path):
    tuned = load_clip(SPEC)
    with torch.no_grad():
        tuned.token_embedding.weight.add_(1.0)
    backbone = _round_trip(ClipBackbone.of(SPEC, tuned, final_loss=0.5), tmp_path)
    assert backbone.finetuned and backbone.metadata == {"final_loss": 0.5}
    loaded = backbone.clip_model(SPEC)
    assert torch.equal(loaded.token_embedding.weight, tuned.token_embedding.weight)
    assert not loaded.training


def test_backbone_of_another_architecture_is_refused():
    backbone = ClipBackbone.of(SPEC)
    with pytest.raises(ValueError, match="kedro run --pipelines captions"):
        backbone.clip_model(ClipSpec(arch="tiny-vit", weights="random", seed=3))
    # the download folder is not part of the model's identity
    backbone.clip_model(ClipSpec(arch="tiny-rn", weights="random", seed=3,
                                 cache_dir="/elsewhere"))


def test_tuned_weights_that_do_not_fit_are_reported():
    state = ClipBackbone.of(SPEC, load_clip(SPEC)).to_state()
    del state["state_dict"]["token_embedding.weight"]
    with pytest.raises(WeightsError, match="missing 1"):
        ClipBackbone.from_state(state).clip_model(SPEC)


def test_not_a_backbone_checkpoint_names_its_source():
    with pytest.raises(ValueError, match="backbone.pt is not a CLIP backbone checkpoint"):
        ClipBackbone.from_state({"state_dict": {}}, "backbone.pt")
