"""Throughput of the data path: JPEG decode + train/test transforms, and sampler epoch planning.

Run: ``python tests/benchmarks/bench_data.py [--images 512] [--workers 0 2]``. Prints images/s for
Market-sized crops (64×128 JPEGs → 256×128 tensors) and the time to plan one P×K epoch and one
graph-sampling epoch at Market-1501 scale (751 identities, 12,936 images).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader

from clip_reid.data.image_dataset import ReidImageDataset
from clip_reid.data.samplers import GraphSampler, RandomIdentitySampler
from clip_reid.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_test_transform,
    build_train_transform,
)


def write_crops(folder: Path, count: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"{i:05d}.jpg"
        pixels = rng.integers(0, 256, size=(128, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(str(path))
    return pd.DataFrame(
        {"path": paths, "pid": np.arange(count) // 4, "camid": 0, "label": np.arange(count) // 4}
    )


def images_per_second(frame: pd.DataFrame, transform, workers: int) -> float:
    loader = DataLoader(
        ReidImageDataset(frame, transform), batch_size=64, num_workers=workers, drop_last=True
    )
    start = time.perf_counter()
    seen = sum(len(batch["label"]) for batch in loader)
    return seen / (time.perf_counter() - start)


def market_scale_labels() -> list[int]:
    counts = np.clip(np.random.default_rng(1).poisson(17, 751), 2, 72)
    return np.repeat(np.arange(751), counts).tolist()


def seconds(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        frame = write_crops(Path(folder), args.images)
        transforms = {
            "train": build_train_transform((256, 128), IMAGENET_MEAN, IMAGENET_STD, 0.5, 10, 0.5),
            "test": build_test_transform((256, 128), IMAGENET_MEAN, IMAGENET_STD),
        }
        for name, transform in transforms.items():
            for workers in args.workers:
                rate = images_per_second(frame, transform, workers)
                print(f"{name} transform, {workers} worker(s): {rate:8.0f} images/s")

    labels = market_scale_labels()
    identity = RandomIdentitySampler(labels, 64, 4, policy="exact")
    print(f"P×K epoch plan ({len(labels)} images, {len(identity)} yielded): "
          f"{seconds(lambda: list(identity)) * 1000:.1f} ms")
    graph = GraphSampler(torch.randn(751, 512), labels, 16, 4, similarity="cosine")
    new_features = torch.randn(751, 512)
    rebuild = seconds(lambda: graph.update_features(new_features))
    print(f"graph rebuild (751 classes): {rebuild * 1000:.1f} ms")
    print(f"graph epoch ({len(graph)} batches): {seconds(lambda: list(graph)) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
