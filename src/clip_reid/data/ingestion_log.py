"""What ingestion left out, told once in the log: nothing is dropped without a word."""

from __future__ import annotations

import logging

import pandas as pd

from clip_reid.data.image_index import IngestionReport
from clip_reid.data.layouts import DatasetLayout

logger = logging.getLogger(__name__)


def log_ingestion(index: pd.DataFrame, report: IngestionReport, layout: DatasetLayout,
                  dataset_root: str) -> None:
    """One INFO line of counts, the first problems of each kind as WARNINGs, the class hint."""
    left_out = {
        "junk (pid -1) dropped": sum(report.junk_dropped.values()),
        "non-image files ignored": sum(report.non_images_ignored.values()),
        f"names not matching {layout.name_pattern}": len(report.bad_names),
        "broken symlinks": len(report.broken_links),
        "listed files missing": len(report.missing_files),
        "unreadable images excluded": len(report.unreadable),
    }
    logger.info(
        "Ingested %d images from %s (layout %s); left out: %s", len(index), dataset_root,
        layout.name, ", ".join(f"{count} {what}" for what, count in left_out.items()),
    )
    for problem in report.bad_names[:10]:
        logger.warning("Skipped (name does not follow %s): %s", layout.name_pattern, problem)
    for problem in report.broken_links[:10]:
        logger.warning("Skipped broken or looping symlink: %s", problem)
    for problem in report.missing_files[:10]:
        logger.warning("Skipped listed file that does not exist: %s", problem)
    for problem in report.unreadable[:10]:
        logger.warning("Excluded unreadable image %s (%s)", problem["path"], problem["error"])
    for warning in report.warnings:
        logger.warning(warning)
    if layout.class_word != "person":
        logger.info("Layout %s shows %ss: stage 1 learns 'A photo of a X X X X %s.' "
                    "(prompt_learning.class_word: null takes the layout's word)", layout.name,
                    layout.class_word, layout.class_word)
