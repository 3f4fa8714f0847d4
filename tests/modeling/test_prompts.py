import pytest
import torch

from clip_reid.modeling import ClipSpec, PromptLearner, TextEncoder, load_clip, tokenizer_for


@pytest.fixture(scope="module")
def text_encoder():
    return TextEncoder(load_clip(ClipSpec("tiny-rn")), tokenizer_for("tiny-rn"))


def test_prompt_learner_shapes_and_context_placement(text_encoder):
    learner = PromptLearner(5, text_encoder, n_ctx=4, class_word="person")
    assert learner.ctx.shape == (5, 4, 128)
    assert 0.015 < learner.ctx.std() < 0.025
    labels = torch.tensor([0, 3])
    prompts = learner(labels)
    assert prompts.shape == (2, 77, 128)
    assert torch.equal(prompts[1, learner.ctx_start:learner.ctx_start + 4], learner.ctx[3])
    template = text_encoder.token_embedding(learner.tokenized_prompts)[0]
    assert torch.equal(prompts[0, :learner.ctx_start], template[:learner.ctx_start])
    assert torch.equal(prompts[0, learner.ctx_start + 4:], template[learner.ctx_start + 4:])


def test_text_features_read_the_end_of_text_token(text_encoder):
    learner = PromptLearner(3, text_encoder, n_ctx=4, class_word="vehicle")
    tokens = learner.tokenized_prompts
    eot = int(tokens.argmax())
    assert tokens[0, eot] == 49407 and eot == int((tokens[0] != 0).sum()) - 1
    features = text_encoder(learner(torch.tensor([0, 1])), tokens.expand(2, -1))
    assert features.shape == (2, 128)
    assert not torch.allclose(features[0], features[1])  # different identities, different text


def test_plain_sentences_match_clip_encode_text(text_encoder):
    clip = load_clip(ClipSpec("tiny-rn"))
    tokens = text_encoder.tokenize(["a person in a red top."])
    assert torch.allclose(text_encoder.encode_sentences(["a person in a red top."]),
                          clip.encode_text(tokens), atol=1e-5)


def test_long_captions_are_truncated_with_the_end_token_kept(text_encoder):
    learner = PromptLearner(2, text_encoder, n_ctx=4, class_word="person")
    tokens = learner.caption_tokens(text_encoder, ["a man walking " * 40, "a woman"])
    assert tokens.shape == (2, 77)
    assert tokens[0, -1] == 49407
    assert tokens[1].argmax() < 20 and tokens[1, tokens[1].argmax()] == 49407
    prompts = learner(torch.tensor([0, 1]), text_encoder.token_embedding(tokens))
    assert text_encoder(prompts, tokens).shape == (2, 128)


def test_rebuild_follows_a_changed_token_embedding(text_encoder):
    learner = PromptLearner(2, text_encoder, n_ctx=4, class_word="person")
    before = learner.template_embedding.clone()
    with torch.no_grad():
        text_encoder.token_embedding.weight.add_(1.0)
    learner.rebuild_frozen_embeddings(text_encoder)
    assert torch.allclose(learner.template_embedding, before + 1.0)
    with torch.no_grad():
        text_encoder.token_embedding.weight.sub_(1.0)
