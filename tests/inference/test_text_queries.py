import numpy as np
import pytest
import torch

from clip_reid.inference import FeatureExtractor, InvalidTextError
from clip_reid.modeling import TextEncoder, load_clip, tokenizer_for
from clip_reid.modeling.reid_checkpoint import MissingTextTowerError

SENTENCES = ["a woman in a red top", "a man with a backpack", "an elderly man in grey shorts"]


@pytest.fixture(scope="module")
def extractor(rn_checkpoint) -> FeatureExtractor:
    return FeatureExtractor(rn_checkpoint, batch_size=2)


def _clip_text_features(spec_seed: int, sentences: list[str]) -> torch.Tensor:
    """What the CLIP text tower the model was built from says, computed without the extractor."""
    from clip_reid.modeling import ClipSpec

    clip = load_clip(ClipSpec("tiny-rn", seed=spec_seed))
    encoder = TextEncoder(clip, tokenizer_for("tiny-rn")).eval()
    with torch.no_grad():
        return torch.nn.functional.normalize(encoder.encode_sentences(sentences), dim=1)


def test_encode_text_gives_unit_features_of_the_stored_text_tower(extractor):
    features = extractor.encode_text(SENTENCES)
    assert isinstance(features, np.ndarray) and features.dtype == np.float32
    assert features.shape == (3, extractor.projection_dim) == (3, 128)
    assert extractor.projection_dim < extractor.feature_dim and extractor.supports_text
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(features, _clip_text_features(0, SENTENCES).numpy(), atol=1e-5)
    assert np.abs(features[0] - features[1]).max() > 1e-3  # different sentences, different rows
    np.testing.assert_array_equal(extractor.encode_text(SENTENCES[:1]), features[:1])


def test_text_tower_is_the_checkpoints_not_a_fresh_one(make_checkpoint):
    """A checkpoint built from seed 1 must embed text like seed 1's tower, not seed 0's."""
    features = FeatureExtractor(make_checkpoint(seed=1)).encode_text(SENTENCES)
    np.testing.assert_allclose(features, _clip_text_features(1, SENTENCES).numpy(), atol=1e-5)
    assert not np.allclose(features, _clip_text_features(0, SENTENCES).numpy(), atol=1e-3)


@pytest.mark.parametrize(
    ("sentences", "message"),
    [
        ([], "non-empty list"),
        ("a woman", "single string"),
        (["a man", ""], "query 1 is empty"),
        (["   "], "query 0 is empty"),
        (["a man", 3], "query 1 is a int"),
        ([b"a man"], "query 0 is a bytes"),
    ],
)
def test_bad_text_is_refused_with_the_reason(extractor, sentences, message):
    with pytest.raises(InvalidTextError, match=message):
        extractor.encode_text(sentences)


def test_text_over_the_context_is_refused_unless_truncation_is_asked_for(extractor):
    long = " ".join(["red"] * 80)
    with pytest.raises(InvalidTextError, match=r"80 tokens long .* at most 75 \(77 positions"):
        extractor.encode_text(["a man", long])
    truncated = extractor.encode_text([long, " ".join(["red"] * 75), " ".join(["red"] * 74)],
                                      truncate=True)
    np.testing.assert_allclose(truncated[0], truncated[1], atol=1e-6)  # only 75 tokens are read
    assert np.abs(truncated[1] - truncated[2]).max() > 1e-4
    extractor.encode_text([" ".join(["red"] * 75)])  # exactly at the limit: accepted


def test_checkpoint_without_text_tower_still_embeds_images(make_checkpoint):
    old = FeatureExtractor(make_checkpoint(with_text=False))
    assert not old.supports_text
    assert old([np.zeros((64, 32, 3), dtype=np.uint8)]).shape == (1, old.feature_dim)
    with pytest.raises(MissingTextTowerError, match="Retrain stage 2"):
        old.encode_text(["a man"])


def test_models_whose_test_feature_is_after_the_neck_refuse_text(make_checkpoint):
    with pytest.raises(ValueError, match="neck_feat: before"):
        FeatureExtractor(make_checkpoint(neck_feat="after")).encode_text(["a man"])
