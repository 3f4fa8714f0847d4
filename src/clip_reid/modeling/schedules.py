"""Learning-rate schedules of CLIP-ReID, as per-epoch multipliers of the base learning rate.

Epochs are 1-based, as in the official code, which steps its schedulers before each epoch.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence


def cosine_with_warmup(
    epoch: int, max_epochs: int, base_lr: float, warmup_epochs: int, warmup_lr: float, min_lr: float
) -> float:
    """Stage 1 learning rate: linear warm-up from ``warmup_lr``, then cosine decay to ``min_lr``.

    Matches timm's CosineLRScheduler(t_initial=max_epochs, warmup_t, warmup_lr_init, lr_min,
    cycle_limit=1) as CLIP-ReID configures it (the cosine is not shifted by the warm-up).
    """
    if epoch < warmup_epochs:
        return warmup_lr + epoch * (base_lr - warmup_lr) / warmup_epochs
    if epoch >= max_epochs:
        return min_lr
    return min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * epoch / max_epochs))


def warmup_multistep(
    epoch: int, warmup_epochs: int, warmup_factor: float, milestones: Sequence[int], gamma: float
) -> float:
    """Stage 2 multiplier: linear warm-up from ``warmup_factor``, then ×gamma at each milestone."""
    factor = 1.0
    if epoch < warmup_epochs:
        alpha = epoch / warmup_epochs
        factor = warmup_factor * (1 - alpha) + alpha
    return factor * gamma ** bisect.bisect_right(list(milestones), epoch)
