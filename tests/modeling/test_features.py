"""The BatchNorm calibration rule shared by the ReID embedding and the tests' random models."""

from __future__ import annotations

import torch
from torch import nn

from clip_reid.modeling.features import batch_norm_calibration


def test_calibration_averages_every_batch_equally_and_restores_the_momentum() -> None:
    model = nn.Sequential(nn.BatchNorm2d(3, momentum=0.3)).eval()
    batches = [torch.randn(4, 3, 2, 2, generator=torch.Generator().manual_seed(s)) + s
               for s in range(3)]
    with torch.no_grad(), batch_norm_calibration(model) as has_norms:
        assert has_norms and model.training
        for batch in batches:
            model(batch)
    norm = model[0]
    expected = torch.stack([b.mean(dim=(0, 2, 3)) for b in batches]).mean(0)
    torch.testing.assert_close(norm.running_mean, expected)
    assert norm.momentum == 0.3 and not model.training


def test_a_model_without_batch_norm_has_nothing_to_calibrate() -> None:
    with batch_norm_calibration(nn.Linear(2, 2)) as has_norms:
        assert not has_norms
