"""Galleries of millions: the approximate (IVF-PQ) GalleryIndex against exact search, on CPU.

Gallery and queries are random unit features of the real test-feature width (1280-d ViT-B/16
by default, --dim 3072 for RN50), clustered like ReID features: identities of about 20 images
each (same-identity cosine ~0.7) around 256 appearance groups (other identities of a group
~0.35, of other groups ~0). Queries are new images of gallery identities.

Reported per gallery size: build time (training + adding), queries/s of ``GalleryIndex.search``
(batch of --queries, k=10, result frame included; median of --repeats after a warm-up),
recall@10 against exact search (faiss flat over the same features; its queries/s shown beside),
the index's own memory (PQ codes + ids, beside the float features every gallery keeps) and the
process's peak RSS. Target: at 1M items >= 1,000 queries/s with recall@10 >= 0.99
on 2 cores; recall >= 0.99 at every size. Exit code 1 when missed.

Usage: python tests/benchmarks/bench_ann.py [--sizes 100000 1000000] [--dim 1280] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time

import faiss
import numpy as np
import torch

from clip_reid.inference import GalleryIndex
from clip_reid.inference.ann_index import AnnSettings

IMAGES_PER_IDENTITY = 20
GROUPS = 256
ITEM_NOISE, IDENTITY_NOISE = 0.65, 1.0  # -> same identity cos ~0.7, same group ~0.35
MIN_QPS_AT = {1_000_000: 1000.0}
MIN_RECALL = 0.99
CHUNK = 65_536


class ClusteredFeatures:
    """Unit features of identities grouped by appearance (see the module docstring)."""

    def __init__(self, size: int, dim: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.dim = dim
        groups = self._unit(self.rng.standard_normal((GROUPS, dim), dtype=np.float32))
        identities = max(1, size // IMAGES_PER_IDENTITY)
        members = groups[self.rng.integers(0, GROUPS, identities)]
        self.centres = self._unit(members + self._noise(identities, IDENTITY_NOISE))

    def sample(self, count: int) -> tuple[torch.Tensor, np.ndarray]:
        pids = self.rng.integers(0, len(self.centres), count)
        features = torch.empty(count, self.dim)
        for start in range(0, count, CHUNK):
            part = pids[start:start + CHUNK]
            block = self._unit(self.centres[part] + self._noise(len(part), ITEM_NOISE))
            features[start:start + CHUNK] = torch.from_numpy(block)
        return features, pids

    def _noise(self, count: int, scale: float) -> np.ndarray:
        noise = self.rng.standard_normal((count, self.dim), dtype=np.float32)
        return noise * np.float32(scale / np.sqrt(self.dim))

    @staticmethod
    def _unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def measure(size: int, args: argparse.Namespace) -> dict[str, float]:
    data = ClusteredFeatures(size, args.dim, args.seed)
    features, pids = data.sample(size)
    queries, _ = data.sample(args.queries)
    paths = [f"gallery/{row:07d}.jpg" for row in range(size)]
    settings = AnnSettings(kind="ivf", nprobe=args.nprobe, rerank=args.rerank, seed=args.seed)
    start = time.perf_counter()
    gallery = GalleryIndex(args.dim, "cosine", "random", index=settings)
    gallery.add(features, paths, pids.tolist())
    build = time.perf_counter() - start
    gallery.search(queries, k=args.k)  # warm-up
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        found = gallery.search(queries, k=args.k)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    _, truth = faiss.knn(queries.numpy(), features.numpy(), args.k, faiss.METRIC_INNER_PRODUCT)
    exact_seconds = time.perf_counter() - start
    rows = np.array([[int(path[8:15]) for path in ranked] for ranked in found["topk_paths"]])
    recall = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(rows, truth, strict=True)])
    index_bytes = gallery.to_state()["ann_index"].numel()
    return {"build_s": build, "qps": args.queries / statistics.median(times),
            "exact_qps": args.queries / exact_seconds, "recall": float(recall),
            "index_mb": index_bytes / 1024 ** 2, "features_mb": features.numel() * 4 / 1024 ** 2,
            "peak_rss_gb": peak_rss_gb(), "nlist": gallery._index.approximate.nlist}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--nprobe", type=int, default=AnnSettings.nprobe)
    parser.add_argument("--rerank", type=int, default=AnnSettings.rerank)
    parser.add_argument("--threads", type=int, default=2, help="faiss and torch threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    print(f"{args.dim}-d, {args.queries} queries, k={args.k}, nprobe {args.nprobe}, rerank "
          f"{args.rerank}, threads {args.threads}, load average at start "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    failed = False
    for size in args.sizes:
        result = measure(size, args)
        target = MIN_QPS_AT.get(size, 0.0)
        ok = result["recall"] >= MIN_RECALL and result["qps"] >= target
        failed |= not ok
        print(f"{size:>9,} items (nlist {result['nlist']}): build {result['build_s']:.0f} s, "
              f"{result['qps']:,.0f} q/s (exact {result['exact_qps']:,.0f}), recall@{args.k} "
              f"{result['recall']:.4f}, index {result['index_mb']:.0f} MB + features "
              f"{result['features_mb']:,.0f} MB, peak RSS {result['peak_rss_gb']:.1f} GB, "
              f"load {os.getloadavg()[0]:.1f} -> target >= {target:g} q/s, recall >= "
              f"{MIN_RECALL}: {'ok' if ok else 'MISSED'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
