import math

import pytest

from clip_reid.modeling.schedules import cosine_with_warmup, warmup_multistep

STAGE1 = dict(max_epochs=60, base_lr=3.5e-4, warmup_epochs=5, warmup_lr=1e-5, min_lr=1e-6)


def test_stage1_warms_up_linearly_then_follows_the_cosine_to_the_floor():
    assert cosine_with_warmup(0, **STAGE1) == pytest.approx(1e-5)
    assert cosine_with_warmup(1, **STAGE1) == pytest.approx(1e-5 + (3.5e-4 - 1e-5) / 5)
    at_5 = 1e-6 + 0.5 * (3.5e-4 - 1e-6) * (1 + math.cos(math.pi * 5 / 60))
    assert cosine_with_warmup(5, **STAGE1) == pytest.approx(at_5)
    assert cosine_with_warmup(30, **STAGE1) == pytest.approx(1e-6 + 0.5 * (3.5e-4 - 1e-6))
    assert cosine_with_warmup(60, **STAGE1) == pytest.approx(1e-6)
    curve = [cosine_with_warmup(e, **STAGE1) for e in range(5, 61)]
    assert all(a >= b for a, b in zip(curve, curve[1:], strict=False))


def test_stage2_rn50_warmup_and_steps():
    def factor(epoch):
        return warmup_multistep(epoch, 10, 0.01, [40, 70], 0.1)

    assert factor(1) == pytest.approx(0.01 * 0.9 + 0.1)
    assert factor(9) == pytest.approx(0.01 * 0.1 + 0.9)
    assert factor(10) == pytest.approx(1.0)
    assert factor(39) == pytest.approx(1.0)
    assert factor(40) == pytest.approx(0.1)
    assert factor(70) == pytest.approx(0.01)
    assert factor(120) == pytest.approx(0.01)
