"""Text-to-image retrieval of a trained model on the test split: test identities' sentences as
queries over the gallery's projection features (protocol: clip_reid.metrics.text_retrieval)."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from clip_reid.data.splits import TEST_SPLITS
from clip_reid.evaluation.feature_set import FeatureSet
from clip_reid.evaluation.settings import EvaluationSettings, TextRetrievalSettings
from clip_reid.inference import FeatureExtractor
from clip_reid.metrics.protocol import DISTRACTOR_PID, JUNK_PID
from clip_reid.metrics.rank_result import HEADLINE_METRICS
from clip_reid.metrics.text_retrieval import chance_text_retrieval, evaluate_text_retrieval
from clip_reid.modeling.reid_checkpoint import ReidCheckpoint

logger = logging.getLogger(__name__)


def sentences_of_test_identities(
    image_captions: pd.DataFrame, image_index: pd.DataFrame,
    sources: tuple[str, ...] | None = ("attributes",),
) -> pd.DataFrame:
    """The text queries: unique (pid, caption) of captions of test-split images (query and
    gallery) whose identity is not a training identity, from ``sources`` (None = every source).
    Sorted by pid then caption, so the query order is reproducible."""
    missing = {"path", "pid", "caption", "source"} - set(image_captions.columns)
    if missing:
        raise ValueError(f"image_captions lacks column(s) {sorted(missing)}.")
    split_of = dict(zip(image_index["path"], image_index["split"], strict=True))
    train_pids = set(image_index.loc[image_index["split"] == "train", "pid"].tolist())
    rows = image_captions[image_captions["path"].map(split_of).isin(TEST_SPLITS)]
    rows = rows[~rows["pid"].isin(train_pids | {JUNK_PID, DISTRACTOR_PID})]
    if sources is not None:
        rows = rows[rows["source"].isin(sources)]
    queries = rows[["pid", "caption"]].drop_duplicates()
    return queries.sort_values(["pid", "caption"]).reset_index(drop=True).astype(
        {"pid": "int64"}
    )


def text_retrieval_report(
    reid_model: ReidCheckpoint, gallery_features: FeatureSet, image_index: pd.DataFrame,
    image_captions: pd.DataFrame, evaluation: EvaluationSettings,
) -> tuple[dict[str, Any], dict[str, float]]:
    """The report (Rank-k, mAP, mINP, chance level) and its scores; a report saying why when it
    cannot run (off, no sentences, or a model saved without its text tower)."""
    settings = evaluation.text_retrieval
    sources = settings.sources
    queries = sentences_of_test_identities(
        image_captions, image_index, None if sources is None else tuple(sources)
    )
    reason = _skip_reason(settings, reid_model, queries)
    if reason:
        logger.info("Text retrieval not evaluated: %s", reason)
        return {"evaluated": False, "reason": reason, "settings": settings.to_dict()}, {}
    reid_model.require_model(gallery_features.fingerprint, "gallery_features",
                             "re-run the evaluation pipeline with this reid_model.")
    extractor = FeatureExtractor(reid_model, batch_size=evaluation.batch_size)
    text = extractor.encode_text(queries["caption"].tolist(), truncate=settings.truncate)
    projections = gallery_features.features[:, -extractor.projection_dim:]
    max_rank = evaluation.max_rank
    result = evaluate_text_retrieval(text, queries["pid"], projections, gallery_features.pids,
                                     max_rank, evaluation.ap_mode)
    scores = result.headline()
    chance = chance_text_retrieval(queries["pid"], gallery_features.pids, max_rank,
                                   settings.chance_repeats)
    logger.info(
        "Text -> image retrieval (%d sentences of %d test identities over %d gallery images): "
        "Rank-1 %.2f%%, Rank-5 %.2f%%, Rank-10 %.2f%%, mAP %.2f%%, mINP %.2f%% "
        "(chance: Rank-1 %.2f%%, mAP %.2f%%)", len(queries), queries["pid"].nunique(),
        len(projections), *(100 * scores[k] for k in HEADLINE_METRICS),
        100 * chance["rank1"], 100 * chance["mAP"],
    )
    report = {
        "evaluated": True, **scores, "chance": chance,
        "num_sentences": len(queries), "num_identities": int(queries["pid"].nunique()),
        "num_valid_queries": result.num_valid_queries,
        "num_skipped_queries": result.num_skipped_queries,
        "num_gallery": len(projections), "cmc": result.cmc.tolist(), "settings": settings.to_dict(),
    }
    return report, scores


def _skip_reason(settings: TextRetrievalSettings, reid_model: ReidCheckpoint,
                 queries: pd.DataFrame) -> str | None:
    if not settings.enabled:
        return "evaluation.text_retrieval.enabled is false"
    if queries.empty:
        return (f"no caption of a test identity from sources {settings.sources} (configure "
                "captions.sources, or evaluation.text_retrieval.sources: null for every source)")
    if not reid_model.has_text_tower:
        return ("the reid_model was saved without its text tower (trained before text search "
                "existed); retrain stage 2 to evaluate text queries")
    return None
