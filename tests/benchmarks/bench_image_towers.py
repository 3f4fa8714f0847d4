"""What each image tower costs per stage-2 training step, in CPU seconds (one thread).

Usage: python tests/benchmarks/bench_image_towers.py [--steps 3] [--batch 64]
For the demo's tiny-rn and each packaged CNN tower, builds the ReID model at 128x64 and times
forward + backward of one P x K batch with ``time.process_time`` (CPU time of this process), so
the figures compare towers even on a machine that other work shares; wall time there would not.
Prints the median over ``--steps`` steps after one warm-up step, and the ratio to tiny-rn.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from clip_reid.modeling import ClipReidModel, ClipSpec, load_clip
from clip_reid.modeling.model_settings import ModelSettings

TOWERS = {"tiny-rn (CLIP's own, cpu_small)": ClipSpec("tiny-rn"),
          "mobilenetv2_100": ClipSpec("tiny-rn", image_tower="mobilenetv2_100"),
          "tf_efficientnet_lite0": ClipSpec("tiny-rn", image_tower="tf_efficientnet_lite0"),
          "tf_efficientnet_lite2": ClipSpec("tiny-rn", image_tower="tf_efficientnet_lite2")}


def step_seconds(spec: ClipSpec, batch: int, steps: int) -> float:
    """Median CPU seconds of one training step (forward, the summed logits, backward)."""
    config = ModelSettings(clip=spec, image_size=(128, 64)).reid_config(743, 0)
    model = ClipReidModel(config, load_clip(spec)).train()
    images = torch.randn(batch, 3, 128, 64)
    times = []
    for _ in range(steps + 1):
        start = time.process_time()
        output = model(images)
        (output.logits[0].sum() + output.logits[1].sum()).backward()
        times.append(time.process_time() - start)
        model.zero_grad(set_to_none=True)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    reference = None
    for name, spec in TOWERS.items():
        seconds = step_seconds(spec, args.batch, args.steps)
        reference = reference or seconds
        print(f"{name}: {seconds:.2f} CPU s per step of {args.batch} crops "
              f"({seconds / reference:.1f}x tiny-rn)", flush=True)


if __name__ == "__main__":
    main()
