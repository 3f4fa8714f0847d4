"""Gallery stores at scale: faiss (GalleryIndex, in process) against milvus-lite (MilvusGallery,
an in-process gRPC server), unfiltered and with camera/time filters, on CPU.

Features: bench_ann's clustered random unit features (1280-d; identities of ~20 images in 256
appearance groups). Every item also gets a camera (0-99, uniform) and a timestamp (uniform over
one day), so the filters keep a known share: "3 %" = cameras 0-2, "0.1 %" = camera 0 within a
2.4-hour window (1 % x 10 %).

Reported per (size, store): build = adding the items (faiss: IVF-PQ training + adding;
milvus-lite: creating the collection, upserting in batches of 2,000 and the first search, which
waits for the index), queries/s of --queries queries at k=10 through the library's search (the
answer frame included; median of --repeats after a warm-up) unfiltered and with each filter,
recall@10 against exact search over the same (filtered) items, and the peak resident memory of
the process (milvus-lite 3 runs its gRPC server as threads of the calling process, so its
memory is included). Each (size, store) runs in its own process so the peaks do not mix.
Filtered faiss searches are exact over the kept rows (see GalleryIndex.search); milvus-lite
filters inside its index search.

Usage: PYTHONPATH=src python tests/benchmarks/bench_store.py [--sizes 100000 1000000]
       [--stores faiss milvus] [--milvus-index HNSW] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import torch
from bench_ann import ClusteredFeatures

from clip_reid.inference import GalleryIndex
from clip_reid.inference.ann_index import AnnSettings
from clip_reid.inference.gallery_filter import GalleryFilter
from clip_reid.inference.milvus_gallery import MilvusGallery, MilvusIndex

CAMERAS = 100
DAY = 86_400.0
FILTERS = {
    "none": None,
    "3%": GalleryFilter(camids=(0, 1, 2)),
    "0.1%": GalleryFilter(camids=(0,), start=0.0, end=DAY / 10),
}
# Build and search parameters of each milvus-lite index (Milvus's documented defaults).
MILVUS_PARAMS = {
    "FLAT": ({}, {}),
    "HNSW": ({"M": 16, "efConstruction": 200}, {"ef": 64}),
    "IVF_FLAT": ({"nlist": 1024}, {"nprobe": 16}),
    "IVF_SQ8": ({"nlist": 1024}, {"nprobe": 16}),
}


def peak_rss_gb() -> float:
    """VmHWM (peak resident set) of this process, from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024 ** 2
    return float("nan")


def dataset(size: int, args: argparse.Namespace):
    data = ClusteredFeatures(size, args.dim, args.seed)
    features, pids = data.sample(size)
    queries, _ = data.sample(args.queries)
    rng = np.random.default_rng(args.seed + 1)
    camids = rng.integers(0, CAMERAS, size)
    timestamps = rng.uniform(0.0, DAY, size)
    paths = [f"gallery/{row:07d}.jpg" for row in range(size)]
    return features, pids, camids, timestamps, paths, queries


def timed_search(search, args: argparse.Namespace):
    search()  # warm-up
    times, found = [], None
    for _ in range(args.repeats):
        start = time.perf_counter()
        found = search()
        times.append(time.perf_counter() - start)
    return args.queries / statistics.median(times), found


def recall(found, truth_rows: np.ndarray, k: int) -> float:
    rows = [[int(path[8:15]) for path in ranked] for ranked in found["topk_paths"]]
    return float(np.mean([len(set(a) & set(b.tolist())) / min(k, len(b))
                          for a, b in zip(rows, truth_rows, strict=True)]))


def exact_truth(features, camids, timestamps, queries, where, k) -> np.ndarray:
    rows = (np.arange(len(features)) if where is None
            else np.flatnonzero(where.mask(camids, timestamps)))
    subset = np.ascontiguousarray(features.numpy()[rows])
    _, found = faiss.knn(queries.numpy(), subset, min(k, len(rows)), faiss.METRIC_INNER_PRODUCT)
    return rows[found]


def measure(size: int, store: str, args: argparse.Namespace) -> dict:
    features, pids, camids, timestamps, paths, queries = dataset(size, args)
    result: dict = {"size": size, "store": store}
    start = time.perf_counter()
    if store == "faiss":
        settings = AnnSettings(kind="ivf", seed=args.seed)
        gallery = GalleryIndex(args.dim, "cosine", "random", index=settings)
        gallery.add(features, paths, pids.tolist(), camids.tolist(), timestamps.tolist())
        result["index"] = "IVF-PQ fast-scan + exact re-scoring"
    else:
        params, search_params = MILVUS_PARAMS[args.milvus_index]
        folder = tempfile.mkdtemp(prefix="bench_store_", dir=args.work_dir)
        gallery = MilvusGallery(f"{folder}/gallery.db", "bench",
                                index=MilvusIndex(args.milvus_index, params, search_params))
        gallery.prepare(args.dim, 0, "random", "cosine")
        gallery.upsert(features, paths, pids.tolist(), camids.tolist(), timestamps.tolist(),
                       "random")
        gallery.search(queries[:1], k=args.k)
        result["index"] = f"{args.milvus_index} {params} {search_params}"
    result["build_s"] = time.perf_counter() - start
    for name, where in FILTERS.items():
        qps, found = timed_search(lambda w=where: gallery.search(queries, args.k, where=w), args)
        truth = exact_truth(features, camids, timestamps, queries, where, args.k)
        result[f"qps_{name}"] = qps
        result[f"recall_{name}"] = recall(found, truth, args.k)
        result[f"kept_{name}"] = (1.0 if where is None
                                  else float(where.mask(camids, timestamps).mean()))
    result["rss_gb"] = peak_rss_gb()
    if store == "milvus":
        gallery.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--stores", nargs="+", default=["faiss", "milvus"],
                        choices=["faiss", "milvus"])
    parser.add_argument("--milvus-index", default="HNSW", choices=sorted(MILVUS_PARAMS))
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="faiss and torch threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", default=None, help="where milvus-lite writes (tmp)")
    parser.add_argument("--one", nargs=2, metavar=("SIZE", "STORE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    if args.one:
        print(json.dumps(measure(int(args.one[0]), args.one[1], args)), flush=True)
        return 0
    print(f"{args.dim}-d, {args.queries} queries, k={args.k}, threads {args.threads}, load "
          f"average at start {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    for size in args.sizes:
        for store in args.stores:
            command = [sys.executable, __file__, *sys.argv[1:], "--one", str(size), store]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            r = json.loads(output.strip().splitlines()[-1])
            print(f"{size:>9,} {store:<6} ({r['index']}): build {r['build_s']:.1f} s; q/s "
                  f"{r['qps_none']:,.0f} / 3% {r['qps_3%']:,.0f} / 0.1% {r['qps_0.1%']:,.0f}; "
                  f"recall@{args.k} {r['recall_none']:.4f} / {r['recall_3%']:.4f} / "
                  f"{r['recall_0.1%']:.4f} (kept {r['kept_3%']:.2%}, {r['kept_0.1%']:.2%}); "
                  f"peak RSS {r['rss_gb']:.2f} GB; load "
                  f"{os.getloadavg()[0]:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
