"""The caption ablation of the README: stage-1 caption mode × caption fine-tuning, on the demo.

Usage (from the repository root, after `kedro run --pipeline data_ingestion`):
    python tests/benchmarks/caption_ablation.py [--env base] [--modes none replace append]
                                          [--tuned-backbone VERSION]

For each fine-tuning setting it runs the captions pipeline once (or reuses the caption-tuned
`clip_backbone` version given), then stage 1, stage 2 and the evaluation per caption mode on
that backbone (`--load-versions`), all through `kedro run` as a user would, and prints a
Markdown table of Rank-1 / mAP / mINP read from each run's versioned `evaluation_metrics`.
Every run is also tracked in MLflow. On 2 CPU cores a row takes a few minutes and the demo's
caption fine-tuning (10 epochs at CLIP's 224x224 input) tens of minutes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

METRICS = Path("data/08_reporting/evaluation_metrics.json")
BACKBONE = Path("data/06_models/clip_backbone.pt")


def kedro_run(pipelines: str, params: dict[str, object], env: str, *extra: str) -> None:
    overrides = ",".join(f"{key}={value}" for key, value in params.items())
    command = ["kedro", "run", "--pipelines", pipelines, "--env", env, "--params", overrides,
               *extra]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def newest_version(dataset: Path) -> Path:
    """The newest version folder of a versioned dataset (Kedro names them by UTC time)."""
    return max(dataset.iterdir(), key=lambda version: version.name)


def latest_metrics() -> dict:
    return json.loads((newest_version(METRICS) / METRICS.name).read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="base")
    parser.add_argument("--modes", nargs="+", default=["none", "replace", "append"])
    parser.add_argument("--tuned-backbone", help="a caption-tuned clip_backbone version to reuse")
    args = parser.parse_args()
    rows = []
    for finetune in (False, True):
        if finetune and args.tuned_backbone:
            backbone = args.tuned_backbone
        else:
            kedro_run("captions", {"caption_finetune.enabled": str(finetune).lower()}, args.env)
            backbone = newest_version(BACKBONE).name
        for mode in args.modes:
            kedro_run("prompt_learning,encoder_training,evaluation",
                      {"prompt_learning.caption_mode": mode}, args.env,
                      "--load-versions", f"clip_backbone:{backbone}")
            metrics = latest_metrics()
            rows.append((mode, finetune, metrics))
    print("\n| stage-1 caption mode | caption fine-tuning | Rank-1 | mAP | mINP |")
    print("|---|---|---|---|---|")
    for mode, finetune, metrics in rows:
        print(f"| {mode} | {'yes' if finetune else 'no'} | {metrics['rank1']:.2%} | "
              f"{metrics['mAP']:.2%} | {metrics['mINP']:.2%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
