"""Time one forward+backward training step of each backbone on CPU and compare with targets.

Usage: python tests/benchmarks/bench_modeling.py [--batch 32] [--repeats 5]
Exit code 1 when a tiny configuration misses its target (well under a second per batch).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from clip_reid.modeling import ClipReidModel, ClipSpec, load_clip
from clip_reid.modeling.model_settings import ModelSettings

TARGET_SECONDS = {"tiny-rn": 0.5, "tiny-vit": 0.5}


def time_step(arch: str, size: tuple[int, int], batch: int, repeats: int) -> float:
    config = ModelSettings(clip=ClipSpec(arch), image_size=size).reid_config(100, 0)
    model = ClipReidModel(config, load_clip(config.clip)).train()
    images = torch.randn(batch, 3, *size)
    times = []
    for _ in range(repeats + 1):  # the first step warms up allocators
        start = time.perf_counter()
        out = model(images)
        loss = sum(x.float().mean() for x in (*out.logits, *out.features))
        loss.backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--large", action="store_true", help="also time RN50 and ViT-B-16")
    args = parser.parse_args()
    torch.manual_seed(0)
    cases = [("tiny-rn", (128, 64)), ("tiny-vit", (128, 64))]
    if args.large:
        cases += [("RN50", (256, 128)), ("ViT-B-16", (256, 128))]
    failed = False
    print(f"{'backbone':10} {'input':>8} {'batch':>5} {'s/step':>8} {'target':>7}")
    for arch, size in cases:
        seconds = time_step(arch, size, args.batch, args.repeats)
        target = TARGET_SECONDS.get(arch)
        ok = target is None or seconds < target
        failed |= not ok
        print(f"{arch:10} {size[0]:>4}x{size[1]:<3} {args.batch:>5} {seconds:8.3f} "
              f"{'' if target is None else f'<{target}':>7} {'' if ok else 'MISSED'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
