"""Text-to-image retrieval of a trained model on the test split: test identities' sentences as
queries over the gallery's projection features (protocol: clip_reid.metrics.text_retrieval)."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from clip_reid.inference import FeatureExtractor
from clip_reid.metrics.evaluation import EvaluationSettings, TextRetrievalSettings
from clip_reid.metrics.text_retrieval import (
    chance_text_retrieval,
    evaluate_text_retrieval,
    rank_summary,
    sentences_of_test_identities,
)
from clip_reid.modeling.text_tower import has_text_tower

logger = logging.getLogger(__name__)


def text_retrieval_report(
    reid_model: dict[str, Any], gallery_features: dict[str, Any], image_index: pd.DataFrame,
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
    extractor = FeatureExtractor(reid_model, batch_size=evaluation.batch_size)
    text = extractor.encode_text(queries["caption"].tolist(), truncate=settings.truncate)
    projections = gallery_features["features"][:, -extractor.projection_dim:]
    max_rank = evaluation.max_rank
    result = evaluate_text_retrieval(text, queries["pid"], projections, gallery_features["pids"],
                                     max_rank, evaluation.ap_mode)
    scores = rank_summary(result)
    chance = chance_text_retrieval(queries["pid"], gallery_features["pids"], max_rank,
                                   settings.chance_repeats)
    logger.info(
        "Text -> image retrieval (%d sentences of %d test identities over %d gallery images): "
        "Rank-1 %.2f%%, Rank-5 %.2f%%, Rank-10 %.2f%%, mAP %.2f%%, mINP %.2f%% "
        "(chance: Rank-1 %.2f%%, mAP %.2f%%)", len(queries), queries["pid"].nunique(),
        len(projections), *(100 * scores[k] for k in ("rank1", "rank5", "rank10", "mAP", "mINP")),
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


def _skip_reason(settings: TextRetrievalSettings, reid_model: dict[str, Any],
                 queries: pd.DataFrame) -> str | None:
    if not settings.enabled:
        return "evaluation.text_retrieval.enabled is false"
    if queries.empty:
        return (f"no caption of a test identity from sources {settings.sources} (configure "
                "captions.sources, or evaluation.text_retrieval.sources: null for every source)")
    if not has_text_tower(reid_model):
        return ("the reid_model was saved without its text tower (trained before text search "
                "existed); retrain stage 2 to evaluate text queries")
    return None
