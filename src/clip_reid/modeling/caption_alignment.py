"""An optional stage-2 term that aligns each training image's projection with the CLIP text
features of its own captions, so free-text queries land near the right people.

The paper's stage 2 aligns the projection only with learned identity prompts ("A photo of a
X X X X person."), which carry no words a user would type. This term (weight
``encoder_training.loss_weights.caption``, 0 = the paper) adds
:func:`clip_reid.modeling.losses.symmetric_contrastive_loss` between the batch's image
projections and the caption features computed here (positives = same identity), with the
frozen text tower of the backbone.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from clip_reid.modeling.text_encoder import TextEncoder


@torch.no_grad()
def image_caption_features(
    text_encoder: TextEncoder, paths: Sequence[str], captions: pd.DataFrame,
    batch_size: int = 256,
) -> tuple[Tensor, Tensor]:
    """Per image of ``paths``: the mean unit text feature of its captions (rows of ``captions``
    with that path), and whether it has any. Images without a caption get a zero row (and
    the features have 0 columns when no image has one)."""
    table = captions[captions["path"].isin(set(paths))]
    sentences = sorted(table["caption"].unique())
    if not sentences:
        return torch.zeros(len(paths), 0), torch.zeros(len(paths), dtype=torch.bool)
    encoded = torch.cat([
        F.normalize(text_encoder.encode_sentences(sentences[start:start + batch_size]).float(),
                    dim=1)
        for start in range(0, len(sentences), batch_size)
    ])
    sentence_row = {sentence: row for row, sentence in enumerate(sentences)}
    image_row = {path: row for row, path in enumerate(paths)}
    features = torch.zeros(len(paths), encoded.shape[1])
    counts = torch.zeros(len(paths))
    rows = torch.tensor([image_row[path] for path in table["path"]], dtype=torch.long)
    features.index_add_(0, rows, encoded[[sentence_row[c] for c in table["caption"]]])
    counts.index_add_(0, rows, torch.ones(len(rows)))
    has_caption = counts > 0
    features[has_caption] /= counts[has_caption, None]
    return features, has_caption
