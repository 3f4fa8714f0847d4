"""The query and gallery that evaluation scores: the training dataset's own test split, or
another dataset's (cross-domain evaluation, how ReID models are judged in practice)."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from clip_reid.data.ingestion_log import log_ingestion
from clip_reid.data.layouts import get_layout, parse_layout
from clip_reid.data.settings import DatasetRef, DatasetSettings, IngestionSettings
from clip_reid.data.splits import TEST_SPLITS

logger = logging.getLogger(__name__)


class EvaluatedDatasetError(ValueError):
    """The dataset to evaluate is not named where it must be."""


def training_query_gallery(
    image_index: pd.DataFrame, training: DatasetSettings
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The training dataset's own index and its description (for the report)."""
    return image_index, {"name": training.name, "variant": training.variant,
                         "root": training.root, "cross_dataset": False}


def evaluated_query_gallery(
    image_index: pd.DataFrame, training: DatasetSettings, target: DatasetRef,
    ingestion: IngestionSettings,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The image index to evaluate and which dataset it is (for the report). With no
    ``target.root`` that is ``image_index`` itself; otherwise ``target``'s folder is indexed
    with its layout's parser (same checks and counts as ingestion) and its query and gallery
    are returned."""
    if not target.is_set:
        return training_query_gallery(image_index, training)
    layout = get_layout(target.layout_name)
    index, report = parse_layout(layout.name, target.root, target.variant,
                                 verify_images=ingestion.verify_images,
                                 num_workers=ingestion.num_workers,
                                 progress_every_s=ingestion.progress_every_s)
    log_ingestion(index, report, layout, target.root)
    test = index[index["split"].isin(TEST_SPLITS)].reset_index(drop=True)
    logger.info(
        "Cross-dataset evaluation: a model trained on %s (%s), evaluated on %s (%s): %d query "
        "and %d gallery images", training.name, training.root, layout.name, target.root,
        int((test["split"] == "query").sum()), int((test["split"] == "gallery").sum()),
    )
    return test, {"name": layout.name, "variant": target.variant, "root": target.root,
                  "cross_dataset": True, "trained_on": f"{training.name} ({training.root})"}


def describe_dataset(evaluated: dict[str, Any]) -> str:
    """One phrase for logs and reports: which dataset, where, and whether it is cross-domain."""
    name = " ".join(filter(None, [evaluated["name"], evaluated["variant"]]))
    text = f"{name} ({evaluated['root']})"
    if evaluated["cross_dataset"]:
        text += f", cross-dataset: the model's training set is {evaluated['trained_on']}"
    return text
