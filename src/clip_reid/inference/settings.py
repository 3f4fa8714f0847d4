"""The `inference` block: queries, the labelled gallery, and how answers are given."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from clip_reid.engine_settings import EmbeddingEngineSettings
from clip_reid.inference.listing import GallerySettings
from clip_reid.inference.serving import ServingSettings
from clip_reid.metrics.distance import METRICS
from clip_reid.settings_base import Settings, setting


@dataclass(frozen=True)
class InferenceSettings(Settings):
    """Keyed ``distance`` as in the `evaluation` block: the same choice (cosine | dot |
    euclidean) under one name."""

    renamed: ClassVar[dict[str, str]] = {"metric": "distance"}

    queries: str | None = None  # folder of query images; None = <dataset_root>/query
    gallery: GallerySettings = setting(default_factory=GallerySettings)
    threshold: float | None = setting(0.1, ge=0.0)  # top-1 distance above this → unknown
    top_k: int = setting(10, ge=1)
    distance: str = setting("cosine", choices=METRICS)  # as evaluation.distance
    batch_size: int = setting(64, ge=1)
    embedding: EmbeddingEngineSettings = setting(default_factory=EmbeddingEngineSettings)
    serving: ServingSettings = setting(default_factory=ServingSettings)
