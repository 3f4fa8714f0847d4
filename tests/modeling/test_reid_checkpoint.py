from dataclasses import replace

import pytest
import torch

from clip_reid.modeling import (
    ClipReidModel,
    ClipSpec,
    ReidCheckpoint,
    ReidConfig,
    TextEncoder,
    WeightsError,
    load_clip,
    tokenizer_for,
)
from clip_reid.modeling.model_settings import ModelSettings
from clip_reid.modeling.reid_checkpoint import MissingTextTowerError, ModelMismatchError
from clip_reid.modeling.text_tower import encode_tokens

HALF = {"mean": (0.5,) * 3, "std": (0.5,) * 3}


def _config(arch="tiny-rn", seed=0, **overrides) -> ReidConfig:
    settings = ModelSettings(clip=ClipSpec(arch, seed=seed), image_size=(128, 64))
    return replace(settings.reid_config(num_classes=7, num_cameras=0), **overrides)


def _model(arch="tiny-rn", seed=0, **overrides):
    config = _config(arch, seed, **overrides)
    clip = load_clip(config.clip)
    return ClipReidModel(config, clip).eval(), clip


def test_state_round_trip_rebuilds_the_model_without_the_original_weights():
    model, clip = _model("tiny-vit", num_cameras=2)
    checkpoint = ReidCheckpoint.from_model(model, HALF, text_tower=clip, epochs=3)
    state = checkpoint.to_state()
    assert state["epochs"] == 3 and state["normalization"] == HALF
    assert "token_embedding.weight" in state["text_tower"]["state_dict"]
    assert not any(k.startswith("visual.") for k in state["text_tower"]["state_dict"])
    loaded = ReidCheckpoint.from_state(state)
    assert loaded.metadata == {"epochs": 3} and loaded.fingerprint == checkpoint.fingerprint
    images, cams = torch.randn(2, 3, 128, 64), torch.tensor([0, 1])
    assert torch.allclose(loaded.model()(images, cams), model(images, cams))
    assert loaded.feature_dim == model.feature_dim
    transform = loaded.test_transform()
    assert transform(torch.zeros(3, 10, 10)).shape == (3, 128, 64)


def test_fingerprint_tracks_weights_config_and_normalisation_but_not_metadata():
    model, _ = _model()
    first = ReidCheckpoint.from_model(model, HALF)
    assert len(first.fingerprint) == 16
    assert ReidCheckpoint.from_model(model, HALF, epochs=9).fingerprint == first.fingerprint
    assert ReidCheckpoint.from_model(model, {"mean": (0.4,) * 3, "std": (0.5,) * 3}
                                     ).fingerprint != first.fingerprint
    with torch.no_grad():
        model.bottleneck.running_mean.add_(1e-3)
    assert ReidCheckpoint.from_model(model, HALF).fingerprint != first.fingerprint


def test_a_published_copy_names_its_fingerprint_without_hashing_again():
    model, _ = _model()
    checkpoint = ReidCheckpoint.from_model(model, HALF)
    state = checkpoint.published().to_state()
    assert state["fingerprint"] == checkpoint.fingerprint
    state["state_dict"] = {k: v + 1 if v.is_floating_point() else v
                           for k, v in state["state_dict"].items()}
    # the published fingerprint is named, not hashed again
    assert ReidCheckpoint.from_state(state).fingerprint == checkpoint.fingerprint


def test_require_model_names_both_models_and_the_fix():
    checkpoint = ReidCheckpoint.from_model(_model()[0], HALF)
    checkpoint.require_model(checkpoint.fingerprint, "gallery_index", "re-embed it.")
    with pytest.raises(ModelMismatchError, match="gallery_index was embedded by model abc, not "
                       f"by this model \\({checkpoint.fingerprint}\\): re-embed it."):
        checkpoint.require_model("abc", "gallery_index", "re-embed it.")


@pytest.mark.parametrize(("state", "message"), [
    ({"state_dict": {}}, "not a ReID model checkpoint"),
    ({"config": {}, "state_dict": {}}, "lacks its pixel 'normalization'"),
    ({"config": {"nope": 1}, "state_dict": {}, "normalization": HALF}, "no valid 'config'"),
    ({"config": _config().to_dict(), "state_dict": {}, "normalization": {"mean": (0.5,)}},
     "exactly mean and std"),
])
def test_a_broken_state_is_refused_naming_its_source(state, message):
    with pytest.raises(ValueError, match=message) as error:
        ReidCheckpoint.from_state(state, "models/x.pt")
    assert "models/x.pt" in str(error.value) or "mean and std" in message


def test_strict_loading_reports_a_missing_weight():
    model, _ = _model()
    state = ReidCheckpoint.from_model(model, HALF).to_state()
    del state["state_dict"]["bottleneck.weight"]
    with pytest.raises(WeightsError, match="bottleneck.weight"):
        ReidCheckpoint.from_state(state).model()


def test_stored_text_tower_rebuilds_to_the_same_features():
    model, clip = _model("tiny-vit", seed=4)
    with torch.no_grad():  # a tuned tower differs from the seed's: the stored weights must win
        clip.token_embedding.weight.add_(0.5)
    checkpoint = ReidCheckpoint.from_model(model, HALF, text_tower=clip)
    tokens = tokenizer_for("tiny-vit")(["a man with a backpack", "a woman"], context_length=77)
    expected = TextEncoder(clip.eval(), None)
    with torch.no_grad():
        want = expected(expected.token_embedding(tokens), tokens)
    assert torch.allclose(encode_tokens(checkpoint.text_encoder(), tokens), want, atol=1e-5)


def test_checkpoint_without_text_tower_says_to_retrain():
    checkpoint = ReidCheckpoint.from_model(_model()[0], HALF)
    assert not checkpoint.has_text_tower
    with pytest.raises(MissingTextTowerError, match="Retrain stage 2"):
        checkpoint.text_encoder()


def test_text_tower_with_a_missing_weight_is_refused():
    model, clip = _model()
    state = ReidCheckpoint.from_model(model, HALF, text_tower=clip).to_state()
    state["text_tower"]["state_dict"].pop("ln_final.bias")
    with pytest.raises(WeightsError, match="missing 1 \\[ln_final.bias\\]"):
        ReidCheckpoint.from_state(state).text_encoder()
