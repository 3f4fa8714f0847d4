import pytest
import torch

from clip_reid.modeling import ClipSpec, TextEncoder, WeightsError, load_clip, tokenizer_for
from clip_reid.modeling.text_tower import (
    MissingTextTowerError,
    encode_tokens,
    has_text_tower,
    load_text_tower,
    text_tower_state,
)


def _checkpoint(clip, arch="tiny-rn", seed=0):
    return {"config": {"clip": ClipSpec(arch, seed=seed).to_dict()},
            "text_tower": text_tower_state(clip)}


def test_stored_text_tower_rebuilds_to_the_same_features():
    clip = load_clip(ClipSpec("tiny-vit", seed=4))
    with torch.no_grad():  # a tuned tower differs from the seed's: the stored weights must win
        clip.token_embedding.weight.add_(0.5)
    checkpoint = _checkpoint(clip, "tiny-vit", seed=4)
    assert has_text_tower(checkpoint)
    assert "token_embedding.weight" in checkpoint["text_tower"]["state_dict"]
    assert not any(k.startswith("visual.") for k in checkpoint["text_tower"]["state_dict"])
    rebuilt = load_text_tower(checkpoint)
    tokens = tokenizer_for("tiny-vit")(["a man with a backpack", "a woman"], context_length=77)
    expected = TextEncoder(clip.eval(), None)
    with torch.no_grad():
        want = expected(expected.token_embedding(tokens), tokens)
    assert torch.allclose(encode_tokens(rebuilt, tokens), want, atol=1e-5)


def test_checkpoint_without_text_tower_says_to_retrain():
    with pytest.raises(MissingTextTowerError, match="Retrain stage 2"):
        load_text_tower({"config": {"clip": ClipSpec().to_dict()}})


def test_text_tower_of_another_architecture_is_refused():
    checkpoint = _checkpoint(load_clip(ClipSpec("tiny-rn")))
    checkpoint["text_tower"]["state_dict"].pop("ln_final.bias")
    with pytest.raises(WeightsError, match="missing 1 \\[ln_final.bias\\]"):
        load_text_tower(checkpoint)
