"""CLIP-ReID losses: supervised contrastive (stage 1); ID + triplet + image-to-text (stage 2)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from clip_reid.settings_base import Settings, setting


def supervised_contrastive_loss(
    anchors: Tensor, candidates: Tensor, anchor_labels: Tensor, candidate_labels: Tensor
) -> Tensor:
    """Mean over anchors of -mean log-softmax(anchor · candidatesᵀ) over same-label candidates.

    Temperature 1 and raw (unnormalised) features, as CLIP-ReID's stage 1 uses it; every anchor
    must have at least one positive (true when anchors and candidates carry the same labels).
    """
    logits = anchors @ candidates.T
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (anchor_labels[:, None] == candidate_labels[None, :]).to(log_prob.dtype)
    return -((positives * log_prob).sum(1) / positives.sum(1)).mean()


def prompt_learning_loss(image_features: Tensor, text_features: Tensor, labels: Tensor) -> Tensor:
    """Stage 1: SupCon(image→text) + SupCon(text→image), positives = same identity in the batch."""
    return supervised_contrastive_loss(
        image_features, text_features, labels, labels
    ) + supervised_contrastive_loss(text_features, image_features, labels, labels)


def symmetric_contrastive_loss(
    image_features: Tensor, text_features: Tensor, labels: Tensor, temperature: float,
) -> Tensor:
    """SupCon(image→text) + SupCon(text→image) on unit vectors, logits / temperature.

    The image↔text loss of caption alignment (stage 2) and caption fine-tuning (before stage 1).
    With distinct labels it is twice CLIP's InfoNCE (CLIP averages the two directions); pairs
    with the same label are positives of each other, not negatives.
    """
    images = F.normalize(image_features, dim=-1) / temperature
    return prompt_learning_loss(images, F.normalize(text_features, dim=-1), labels)


def batch_hard_triplet_loss(features: Tensor, labels: Tensor, margin: float) -> Tensor:
    """Batch-hard triplet loss on Euclidean distances (hardest positive vs hardest negative)."""
    distances = torch.cdist(features, features).clamp_min(1e-12)
    same = labels[:, None] == labels[None, :]
    hardest_positive = distances.masked_fill(~same, float("-inf")).amax(dim=1)
    hardest_negative = distances.masked_fill(same, float("inf")).amin(dim=1)
    return F.relu(hardest_positive - hardest_negative + margin).mean()


@dataclass(frozen=True)
class EncoderLossWeights(Settings):
    """Weights of the three stage-2 terms (RN50: 1/1/1; ViT: 0.25/1/1), and of the optional
    caption-alignment term (0 = off, the paper; see modeling.caption_alignment)."""

    id: float = setting(1.0, ge=0.0)
    triplet: float = setting(1.0, ge=0.0)
    i2t: float = setting(1.0, ge=0.0)
    caption: float = setting(0.0, ge=0.0)


def encoder_training_loss(
    logits: Sequence[Tensor],
    features: Sequence[Tensor],
    i2t_logits: Tensor,
    labels: Tensor,
    weights: EncoderLossWeights,
    label_smoothing: float,
    margin: float,
) -> dict[str, Tensor]:
    """Stage 2: w_id·Σ CE_ls(classifiers) + w_tri·Σ triplet(features) + w_i2t·CE_ls(image·textᵀ)."""
    id_loss = sum(F.cross_entropy(x, labels, label_smoothing=label_smoothing) for x in logits)
    triplet = sum(batch_hard_triplet_loss(f, labels, margin) for f in features)
    i2t = F.cross_entropy(i2t_logits, labels, label_smoothing=label_smoothing)
    total = weights.id * id_loss + weights.triplet * triplet + weights.i2t * i2t
    return {"loss": total, "id_loss": id_loss, "triplet_loss": triplet, "i2t_loss": i2t}
