"""Text-to-image retrieval on the test split: test identities' sentences as queries over the
gallery (see clip_reid.metrics.text_retrieval for the protocol)."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from clip_reid.inference import FeatureExtractor
from clip_reid.metrics.text_retrieval import (
    chance_text_retrieval,
    evaluate_text_retrieval,
    rank_summary,
    sentences_of_test_identities,
)
from clip_reid.modeling.text_tower import has_text_tower

logger = logging.getLogger(__name__)

DEFAULTS = {"enabled": True, "sources": ["attributes"], "truncate": True, "chance_repeats": 10}


def text_settings(evaluation: dict[str, Any]) -> dict[str, Any]:
    """``evaluation.text_retrieval`` with defaults; unknown keys are refused (typos)."""
    given = evaluation.get("text_retrieval") or {}
    if isinstance(given, bool):
        given = {"enabled": given}
    unknown = set(given) - set(DEFAULTS)
    if unknown:
        raise ValueError(
            f"Unknown evaluation.text_retrieval setting(s) {sorted(unknown)}; known: "
            f"{sorted(DEFAULTS)}."
        )
    return {**DEFAULTS, **given}


def evaluate_text_queries(
    reid_model: dict[str, Any], gallery_features: dict[str, Any], image_index: pd.DataFrame,
    image_captions: pd.DataFrame, evaluation: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Rank-1/5/10, mAP, mINP of test-identity sentences over every gallery image, with the
    chance level beside them; a report saying why when it cannot run (off, no sentences, or a
    model saved without its text tower)."""
    settings = text_settings(evaluation)
    sources = settings["sources"]
    queries = sentences_of_test_identities(
        image_captions, image_index, None if sources is None else tuple(sources)
    )
    reason = _skip_reason(settings, reid_model, queries)
    if reason:
        logger.info("Text retrieval not evaluated: %s", reason)
        return {"evaluated": False, "reason": reason, "settings": settings}, {}
    extractor = FeatureExtractor(reid_model, batch_size=evaluation.get("batch_size", 64))
    text = extractor.encode_text(queries["caption"].tolist(), truncate=settings["truncate"])
    projections = gallery_features["features"][:, -extractor.projection_dim:]
    max_rank = evaluation.get("max_rank", 50)
    result = evaluate_text_retrieval(text, queries["pid"], projections, gallery_features["pids"],
                                     max_rank, evaluation.get("ap_mode", "standard"))
    scores = rank_summary(result)
    chance = chance_text_retrieval(queries["pid"], gallery_features["pids"], max_rank,
                                   settings["chance_repeats"])
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
        "num_gallery": len(projections), "cmc": result.cmc.tolist(), "settings": settings,
    }
    mlflow_metrics = {f"text_{name}": {"value": float(value), "step": 0}
                      for name, value in scores.items()}
    return report, mlflow_metrics


def _skip_reason(settings: dict[str, Any], reid_model: dict[str, Any],
                 queries: pd.DataFrame) -> str | None:
    if not settings["enabled"]:
        return "evaluation.text_retrieval.enabled is false"
    if queries.empty:
        return (f"no caption of a test identity from sources {settings['sources']} (configure "
                "captions.sources, or evaluation.text_retrieval.sources: null for every source)")
    if not has_text_tower(reid_model):
        return ("the reid_model was saved without its text tower (trained before text search "
                "existed); retrain stage 2 to evaluate text queries")
    return None
