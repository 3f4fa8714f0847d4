"""What matching on colour alone achieves on a dataset: the floor a ReID model must clear.

Usage: python tests/benchmarks/colour_baseline.py --root <folder> [--name market1501] [--variant V]
Prints Rank-1/5/10, mAP and mINP of joint-RGB-histogram matching (Market-1501 protocol) on the
dataset's query and gallery splits, read with the same layout parsers as ingestion.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict

from clip_reid.data.layouts import parse_layout
from clip_reid.data.settings import IngestionSettings
from clip_reid.data.splits import select_split
from clip_reid.metrics import evaluate_rank
from clip_reid.metrics.baselines import colour_histograms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", required=True)
    parser.add_argument("--name", default="market1501")
    parser.add_argument("--variant", default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    index, _ = parse_layout(args.name, args.root, args.variant,
                            **asdict(IngestionSettings(verify_images=False)))
    query, gallery = select_split(index, "query"), select_split(index, "gallery")
    distances = 1 - colour_histograms(query.path) @ colour_histograms(gallery.path).T
    result = evaluate_rank(distances, query.pid, gallery.pid, query.camid, gallery.camid)
    print(f"colour-histogram baseline on {args.root} ({len(query)} queries, {len(gallery)} "
          f"gallery): Rank-1 {result.rank(1):.2%}, Rank-5 {result.rank(5):.2%}, "
          f"Rank-10 {result.rank(10):.2%}, mAP {result.mAP:.2%}, mINP {result.mINP:.2%} "
          f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
