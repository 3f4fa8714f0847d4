"""Time the inference library on CPU and compare with reference figures measured on the project's
2-core CPU machine, one thread by default (targets carry generous margins, as other work may
share the cores; with more threads than free cores, torch's thread pool can stall for 100s of ms).

Measured: queries per second of ``GalleryIndex.search`` alone (exact faiss search plus building
the result frame; no feature extraction) over random 1280-d gallery features (the ViT-B/16 test
feature size) of 10k and 100k images, 1,000 queries, k=10, cosine; and the single-image latency
of ``FeatureExtractor`` (JPEG bytes in → feature out: decode, resize, forward) on a random tiny-rn
model at 256x128, with the PyTorch and the ONNX Runtime backends.

Usage: python tests/benchmarks/bench_inference.py [--quick] [--threads 1] [--queries 1000]
       [--repeats 3]
Exit code 1 when a figure is worse than its target.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable

import faiss
import numpy as np
import torch
from PIL import Image

from clip_reid.data.transforms import normalization_for
from clip_reid.inference import FeatureExtractor, GalleryIndex
from clip_reid.modeling import ClipReidModel, ClipSpec, load_clip
from clip_reid.modeling.model_settings import ModelSettings
from clip_reid.modeling.onnx_export import export_onnx
from clip_reid.modeling.reid_checkpoint import ReidCheckpoint

FEATURE_DIM = 1280
IMAGE_SIZE = (256, 128)
# Reference, 1 thread, on the 2-core project machine while other jobs kept it busy (load 3-4):
# 10k gallery 2,500-3,900 q/s, 100k 270-400 q/s; tiny-rn single image 11-17 ms (torch),
# 7-12 ms (onnx). Targets leave about 3x of margin for noisier neighbours.
MIN_QUERIES_PER_SECOND = {10_000: 800.0, 100_000: 90.0}
MAX_LATENCY_MS = {"torch": 50.0, "onnx": 40.0}


def timed(function: Callable[[], object], repeats: int) -> float:
    """Median seconds over ``repeats`` calls, after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def random_gallery(size: int, seed: int) -> GalleryIndex:
    rng = np.random.default_rng(seed)
    gallery = GalleryIndex(FEATURE_DIM, "cosine", fingerprint="random")
    features = rng.standard_normal((size, FEATURE_DIM), dtype=np.float32)
    gallery.add(features, [f"gallery/{i:06d}.jpg" for i in range(size)],
                pids=rng.integers(0, 1500, size).tolist())
    return gallery


def tiny_extractors(threads: int | None) -> dict[str, FeatureExtractor]:
    config = ModelSettings(clip=ClipSpec("tiny-rn"), image_size=IMAGE_SIZE).reid_config(751, 0)
    model = ClipReidModel(config, load_clip(config.clip)).eval()
    mean, std = normalization_for("tiny-rn")
    checkpoint = ReidCheckpoint.from_model(model, normalization={"mean": mean, "std": std})
    onnx_model = export_onnx(model)
    return {
        "torch": FeatureExtractor(checkpoint),
        "onnx": FeatureExtractor(checkpoint, backend="onnx", onnx_model=onnx_model,
                                 onnx_threads=threads),
    }


def jpeg_crop(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (*IMAGE_SIZE, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


class Table:
    def __init__(self) -> None:
        self.failed = False
        print(f"{'measure':48} {'value':>12} {'target':>12}  status")

    def row(self, name: str, value: float, unit: str, target: float, higher_is_better: bool):
        ok = value >= target if higher_is_better else value <= target
        self.failed |= not ok
        bound = f"{'>=' if higher_is_better else '<='}{target:g}"
        print(f"{name:48} {value:>8.1f} {unit:<3} {bound:>12}  {'ok' if ok else 'MISSED'}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="skip the 100k gallery")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per search figure")
    parser.add_argument("--latency-repeats", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="threads of torch, onnxruntime and faiss (default 1: reproducible on "
                             "a shared machine, where oversubscribed thread pools stall)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    sizes = [10_000] if args.quick else [10_000, 100_000]
    print(f"{FEATURE_DIM}-d features, {args.queries} queries, k={args.k}, threads: torch "
          f"{torch.get_num_threads()}, faiss {faiss.omp_get_max_threads()}\n")
    table = Table()
    queries = np.random.default_rng(args.seed + 1).standard_normal(
        (args.queries, FEATURE_DIM), dtype=np.float32)
    for size in sizes:
        gallery = random_gallery(size, args.seed)
        seconds = timed(lambda g=gallery: g.search(queries, k=args.k), args.repeats)
        table.row(f"GalleryIndex.search, {size:,} gallery", args.queries / seconds, "q/s",
                  MIN_QUERIES_PER_SECOND[size], higher_is_better=True)
        del gallery
    image = jpeg_crop(args.seed)
    for backend, extractor in tiny_extractors(args.threads).items():
        seconds = timed(lambda e=extractor: e([image]), args.latency_repeats)
        table.row(f"FeatureExtractor 1 image, tiny-rn {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}, {backend}",
                  seconds * 1000, "ms", MAX_LATENCY_MS[backend], higher_is_better=False)
    return 1 if table.failed else 0


if __name__ == "__main__":
    sys.exit(main())
