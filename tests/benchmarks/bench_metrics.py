"""Time the ReID metrics on a Market-1501-sized random problem and compare with targets.

The problem is seeded and shaped like Market-1501's test split (3368 queries, 15913 gallery
images of which 2793 distractors, 751 identities, 6 cameras); features are identity centres
plus a camera offset plus noise, so true matches are closer (mAP about 0.9, like a trained
model). Measured: the distance matrix; ``evaluate_rank`` against the per-query reference loop
(they must agree to 1e-6); top-10 lists of every query; k-reciprocal re-ranking, its time and
peak memory as the growth of the resident set (the kernel's peak mark VmHWM, reset through
/proc/self/clear_refs just before the call, minus VmRSS before it, in a fresh process; not
ru_maxrss, which a spawned process inherits from its parent); faiss top-k search plus
``evaluate_topk``.

Usage: python tests/benchmarks/bench_metrics.py [--small] [--dim 256] [--repeats 3] [--no-rerank]
Exit code 1 when a target is missed or the two evaluators disagree.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from clip_reid.metrics import (
    FaissGalleryIndex,
    compute_distance_matrix,
    evaluate_rank,
    evaluate_topk,
    re_rank,
    top_k_ranked,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/metrics/rank_oracle.py

from metrics.rank_oracle import evaluate_rank_reference  # noqa: E402

EVALUATE_RANK_TARGET_SECONDS = 1.0
AGREEMENT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Size:
    num_query: int
    num_gallery: int
    num_distractors: int
    num_ids: int
    num_cams: int = 6


MARKET = Size(num_query=3368, num_gallery=15913, num_distractors=2793, num_ids=751)
SMALL = Size(num_query=400, num_gallery=2000, num_distractors=300, num_ids=100)


def make_problem(size: Size, dim: int, seed: int) -> dict[str, np.ndarray | torch.Tensor]:
    """Seeded features and labels where an image = its identity centre + camera offset + noise;
    distractors (pid 0) are unrelated images."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((size.num_ids + 1, dim)).astype(np.float32)
    camera_offsets = 0.5 * rng.standard_normal((size.num_cams, dim)).astype(np.float32)
    q_pids = rng.integers(1, size.num_ids + 1, size.num_query)
    g_pids = np.concatenate([
        rng.integers(1, size.num_ids + 1, size.num_gallery - size.num_distractors),
        np.zeros(size.num_distractors, dtype=np.int64),
    ])
    q_camids = rng.integers(0, size.num_cams, size.num_query)
    g_camids = rng.integers(0, size.num_cams, size.num_gallery)

    def features(pids: np.ndarray, camids: np.ndarray) -> torch.Tensor:
        noise = 1.4 * rng.standard_normal((len(pids), dim)).astype(np.float32)
        values = centres[pids] + camera_offsets[camids] + noise
        distractors = pids == 0
        values[distractors] = 1.4 * rng.standard_normal((distractors.sum(), dim))
        return torch.from_numpy(values)

    return {
        "query": features(q_pids, q_camids), "gallery": features(g_pids, g_camids),
        "q_pids": q_pids, "g_pids": g_pids, "q_camids": q_camids, "g_camids": g_camids,
    }


def timed(function: Callable[[], object], repeats: int = 1) -> tuple[float, object]:
    """Median seconds over ``repeats`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def memory_mib(field: str) -> float:
    """A /proc/self/status memory field (VmRSS = resident now, VmHWM = peak resident) in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}: this benchmark needs Linux.")


def reset_peak() -> None:
    """Reset VmHWM to the current resident size (Linux >= 4.0), so it measures what follows."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def rerank_in_fresh_process(size: Size, dim: int, seed: int, queue: multiprocessing.Queue) -> None:
    """Re-rank in a clean process so the peak reflects this call, not earlier work."""
    problem = make_problem(size, dim, seed)
    re_rank(problem["query"][:30], problem["gallery"][:60])  # one-time BLAS/thread-pool set-up
    reset_peak()
    before = memory_mib("VmRSS")
    seconds, reranked = timed(lambda: re_rank(problem["query"], problem["gallery"]))
    growth = memory_mib("VmHWM") - before
    labels = [problem[k] for k in ("q_pids", "g_pids", "q_camids", "g_camids")]
    queue.put((seconds, growth, evaluate_rank(reranked, *labels).mAP))


class Table:
    def __init__(self) -> None:
        self.failed = False
        print(f"{'measure':44} {'value':>14} {'target':>10}  status")

    def row(self, name: str, value: float, unit: str, target: float | None = None) -> None:
        ok = target is None or value < target
        self.failed |= not ok
        shown_target = "" if target is None else f"<{target:g}{unit}"
        status = "" if target is None else ("ok" if ok else "MISSED")
        print(f"{name:44} {value:>10.3f} {unit:<3} {shown_target:>10}  {status}")

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.failed |= not ok
        print(f"{name:44} {detail:>25}  {'ok' if ok else 'FAILED'}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true", help="a 400 x 2000 problem (quick run)")
    parser.add_argument("--dim", type=int, default=256, help="feature dimension (default 256)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of evaluate_rank")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--topk", type=int, default=100, help="k of the faiss search")
    parser.add_argument("--no-rerank", action="store_true", help="skip re-ranking")
    args = parser.parse_args()
    size = SMALL if args.small else MARKET
    problem = make_problem(size, args.dim, args.seed)
    labels = [problem[k] for k in ("q_pids", "g_pids", "q_camids", "g_camids")]
    print(f"problem: {size.num_query} queries x {size.num_gallery} gallery, {size.num_ids} ids, "
          f"{size.num_cams} cameras, dim {args.dim}, torch threads {torch.get_num_threads()}\n")

    table = Table()
    seconds, distances = timed(
        lambda: compute_distance_matrix(problem["query"], problem["gallery"])
    )
    table.row("compute_distance_matrix (cosine)", seconds, "s")
    distmat = distances.numpy()

    seconds, fast = timed(lambda: evaluate_rank(distmat, *labels), args.repeats)
    target = EVALUATE_RANK_TARGET_SECONDS
    table.row("evaluate_rank (vectorised)", seconds, "s", target)
    seconds, _ = timed(lambda: evaluate_rank(distmat, *labels, ap_mode="market_matlab"))
    table.row("evaluate_rank (market_matlab AP)", seconds, "s", target)
    seconds, slow = timed(lambda: evaluate_rank_reference(distmat, *labels))
    table.row("evaluate_rank_reference (per-query loop)", seconds, "s")
    gap = max(
        float(np.abs(fast.cmc - slow.cmc).max()), abs(fast.mAP - slow.mAP),
        abs(fast.mINP - slow.mINP),
    )
    table.check("vectorised == loop (cmc, mAP, mINP)", gap <= AGREEMENT_TOLERANCE,
                f"max gap {gap:.1e}")
    print(f"{'':44} mAP {fast.mAP:.4f}, mINP {fast.mINP:.4f}, rank-1 {fast.cmc[0]:.4f}")
    seconds, _ = timed(lambda: top_k_ranked(distmat, *labels, k=10))
    table.row("top_k_ranked (k=10, every query)", seconds, "s")

    if not args.no_rerank:
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        child = context.Process(
            target=rerank_in_fresh_process, args=(size, args.dim, args.seed, queue)
        )
        child.start()
        seconds, peak, reranked_map = queue.get()
        child.join()
        num_all = size.num_query + size.num_gallery
        dense_mib = num_all**2 * 4 / 2**20
        table.row("re_rank k1=20 k2=6 (euclidean)", seconds, "s")
        # at --small size the fixed buffers (chunks, pair blocks) outweigh an N x N matrix
        memory_target = None if args.small else dense_mib
        table.row("re_rank peak RSS growth (VmHWM - VmRSS)", peak, "MiB", target=memory_target)
        print(f"{'':44} (one dense N x N float32 = {dense_mib:.0f} MiB; "
              f"output alone {size.num_query * size.num_gallery * 4 / 2**20:.0f} MiB; "
              f"mAP after re-ranking {reranked_map:.4f})")

    index = FaissGalleryIndex(args.dim, "cosine")
    half = size.num_gallery // 2
    seconds, _ = timed(lambda: (index.add(problem["gallery"][:half]),
                                index.add(problem["gallery"][half:])))
    table.row("faiss add (2 incremental batches)", seconds, "s")
    seconds, (_, ids) = timed(lambda: index.search(problem["query"], k=args.topk))
    table.row(f"faiss search top-{args.topk}", seconds, "s")
    seconds, truncated = timed(lambda: evaluate_topk(ids, *labels))
    table.row(f"evaluate_topk (k={args.topk})", seconds, "s")
    print(f"{'':44} truncated mAP {truncated.mAP:.4f} <= dense {fast.mAP:.4f}, "
          f"rank-1 {truncated.cmc[0]:.4f}")
    return 1 if table.failed else 0


if __name__ == "__main__":
    sys.exit(main())
