import math

import pytest
import torch
import torch.nn.functional as F

from clip_reid.modeling.losses import (
    EncoderLossWeights,
    batch_hard_triplet_loss,
    encoder_training_loss,
    prompt_learning_loss,
    supervised_contrastive_loss,
    symmetric_contrastive_loss,
)


def test_supcon_matches_hand_computed_value():
    eye = torch.eye(2)
    labels = torch.tensor([0, 1])
    expected = math.log(1 + math.e) - 1  # -log softmax([1, 0])[0]
    assert supervised_contrastive_loss(eye, eye, labels, labels).item() == pytest.approx(expected)
    assert prompt_learning_loss(eye, eye, labels).item() == pytest.approx(2 * expected)


def test_supcon_averages_over_all_positives():
    anchors = torch.tensor([[1.0, 0.0]])
    candidates = torch.tensor([[2.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    labels = torch.tensor([0, 1, 0])
    loss = supervised_contrastive_loss(anchors, candidates, torch.tensor([0]), labels)
    log_prob = torch.log_softmax(torch.tensor([2.0, 0.0, 1.0]), 0)
    assert loss.item() == pytest.approx(-(log_prob[0] + log_prob[2]).item() / 2)


def test_batch_hard_triplet_matches_hand_computed_value():
    features = torch.tensor([[0.0], [1.0], [3.0], [6.0]])
    labels = torch.tensor([0, 0, 1, 1])
    # only anchor 3.0 violates: hardest positive 3, hardest negative 2 -> 3 - 2 + 0.3
    assert batch_hard_triplet_loss(features, labels, 0.3).item() == pytest.approx(1.3 / 4)


def test_triplet_gradient_is_finite_with_duplicate_features():
    features = torch.zeros(4, 3, requires_grad=True)
    batch_hard_triplet_loss(features, torch.tensor([0, 0, 1, 1]), 0.3).backward()
    assert torch.isfinite(features.grad).all()


def test_stage2_loss_combines_weighted_terms():
    torch.manual_seed(0)
    labels = torch.tensor([0, 0, 1, 1])
    logits = (torch.randn(4, 3), torch.randn(4, 3))
    features = (torch.randn(4, 5), torch.randn(4, 6), torch.randn(4, 2))
    i2t = torch.randn(4, 3)
    weights = EncoderLossWeights(id=0.25, triplet=1.0, i2t=0.5)
    out = encoder_training_loss(logits, features, i2t, labels, weights, label_smoothing=0.1,
                                margin=0.3)

    def smoothed_ce(x):  # (1 - eps) * one-hot + eps / K, written out
        target = torch.full((4, 3), 0.1 / 3)
        target[torch.arange(4), labels] += 0.9
        return -(target * F.log_softmax(x, 1)).sum(1).mean()

    id_loss = smoothed_ce(logits[0]) + smoothed_ce(logits[1])
    triplet = sum(batch_hard_triplet_loss(f, labels, 0.3) for f in features)
    expected = 0.25 * id_loss + triplet + 0.5 * smoothed_ce(i2t)
    assert out["id_loss"].item() == pytest.approx(id_loss.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_distinct_labels_give_twice_clips_symmetric_infonce():
    generator = torch.Generator().manual_seed(0)
    images, texts = torch.randn(6, 8, generator=generator), torch.randn(6, 8, generator=generator)
    logits = F.normalize(images, dim=1) @ F.normalize(texts, dim=1).T / 0.07
    targets = torch.arange(6)
    clip = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
    loss = symmetric_contrastive_loss(images, texts, targets, 0.07)
    assert loss.item() == pytest.approx(2 * clip.item(), rel=1e-5)


def test_symmetric_loss_is_both_former_definitions():
    """Caption alignment summed the two directions (bit for bit the same); caption
    fine-tuning averaged them, dividing the text side by the temperature (same to rounding)."""
    generator = torch.Generator().manual_seed(2)
    images, texts = torch.randn(8, 5, generator=generator), torch.randn(8, 5, generator=generator)
    labels = torch.tensor([0, 0, 1, 1, 2, 3, 3, 4])
    units, text_units = F.normalize(images, dim=1), F.normalize(texts, dim=1)
    loss = symmetric_contrastive_loss(images, texts, labels, 0.07)
    assert torch.equal(loss, prompt_learning_loss(units / 0.07, text_units, labels))
    averaged = 0.5 * (supervised_contrastive_loss(units / 0.07, text_units, labels, labels)
                      + supervised_contrastive_loss(text_units / 0.07, units, labels, labels))
    torch.testing.assert_close(0.5 * loss, averaged, rtol=1e-6, atol=0)


def test_pairs_sharing_a_label_are_positives_not_negatives():
    """Images of one caption may swap texts freely; with distinct captions a swap is penalised."""
    generator = torch.Generator().manual_seed(1)
    images, texts = torch.randn(4, 8, generator=generator), torch.randn(4, 8, generator=generator)
    swapped = images[[1, 0, 2, 3]]
    shared = torch.tensor([0, 0, 1, 2])
    distinct = torch.arange(4)
    assert symmetric_contrastive_loss(swapped, texts, shared, 0.1) == pytest.approx(
        symmetric_contrastive_loss(images, texts, shared, 0.1).item(), rel=1e-6)
    assert symmetric_contrastive_loss(swapped, texts, distinct, 0.1) != pytest.approx(
        symmetric_contrastive_loss(images, texts, distinct, 0.1).item(), rel=1e-3)


def test_loss_is_low_when_images_point_at_their_identitys_texts():
    labels = torch.tensor([0, 0, 1, 1])
    captions = torch.eye(4)[[0, 0, 1, 1]]
    aligned = symmetric_contrastive_loss(captions * 3, captions, labels, temperature=0.1)
    swapped = symmetric_contrastive_loss(captions[[2, 3, 0, 1]], captions, labels, temperature=0.1)
    # two positives per anchor: the minimum is ln 2 per direction
    assert aligned == pytest.approx(2 * math.log(2), abs=1e-3) and swapped > aligned + 10
    projection = torch.randn(4, 4, requires_grad=True)
    symmetric_contrastive_loss(projection, captions, labels, 0.07).backward()
    assert projection.grad.abs().sum() > 0
