import pandas as pd
import pytest
import torch

from clip_reid.modeling import ClipSpec, TextEncoder, load_clip, tokenizer_for
from clip_reid.modeling.caption_alignment import image_caption_features


def test_each_image_gets_the_mean_feature_of_its_own_captions():
    encoder = TextEncoder(load_clip(ClipSpec("tiny-rn")), tokenizer_for("tiny-rn")).eval()
    captions = pd.DataFrame({
        "path": ["a.jpg", "a.jpg", "b.jpg", "test.jpg"],
        "caption": ["a man in red", "a man with a bag", "a woman", "a test person"],
    })
    features, has_caption = image_caption_features(encoder, ["a.jpg", "b.jpg", "c.jpg"],
                                                   captions, batch_size=2)
    assert has_caption.tolist() == [True, True, False]
    with torch.no_grad():
        unit = torch.nn.functional.normalize(
            encoder.encode_sentences(["a man in red", "a man with a bag", "a woman"]), dim=1)
    assert torch.allclose(features[0], unit[:2].mean(0), atol=1e-5)
    assert torch.allclose(features[1], unit[2], atol=1e-5)
    assert torch.equal(features[2], torch.zeros(features.shape[1]))
    none, flags = image_caption_features(encoder, ["c.jpg"], captions)
    assert none.shape == (1, 0) and not flags.any()


def test_the_pipeline_refuses_the_caption_term_without_training_captions():
    from clip_reid.modeling.encoder_training import (
        EncoderLoss,
        EncoderOptimizer,
        EncoderTrainingModule,
    )
    from clip_reid.modeling.losses import EncoderLossWeights

    loss = EncoderLoss(weights=EncoderLossWeights(caption=1.0))
    with pytest.raises(ValueError, match="caption features"):
        EncoderTrainingModule(torch.nn.Linear(1, 1), torch.zeros(2, 4), EncoderOptimizer(), loss)
