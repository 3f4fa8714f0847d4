"""The `evaluation` block: how query and gallery are embedded, ranked and reported."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from clip_reid.data.settings import DatasetRef
from clip_reid.engine_settings import EmbeddingEngineSettings
from clip_reid.metrics.distance import METRICS
from clip_reid.metrics.inputs import AP_MODES
from clip_reid.metrics.rerank_inputs import RERANK_METRICS
from clip_reid.modeling.features import DTYPES
from clip_reid.settings_base import Settings, setting

RETRIEVALS = ("dense", "faiss")


@dataclass(frozen=True)
class RerankSettings(Settings):
    """k-reciprocal re-ranking (Zhong et al. 2017)."""

    renamed: ClassVar[dict[str, str]] = {"metric": "distance"}  # one name for the choice
    enabled: bool = False
    k1: int = setting(20, ge=1)
    k2: int = setting(6, ge=1)
    lambda_value: float = setting(0.3, ge=0.0, le=1.0)
    distance: str = setting("euclidean", choices=RERANK_METRICS)
    normalize: bool = True  # L2-normalise first, as the official evaluator does


@dataclass(frozen=True)
class TextRetrievalSettings(Settings):
    """Text -> image retrieval: test identities' sentences as queries over the gallery."""

    enabled: bool = True
    sources: tuple[str, ...] | None = ("attributes",)  # caption sources; null = every source
    truncate: bool = True  # sentences over 75 BPE tokens keep their first 75 (as CLIP does)
    chance_repeats: int = setting(10, ge=1)  # random rankings averaged for the chance level


@dataclass(frozen=True)
class EvaluationSettings(Settings):
    """The `evaluation` block."""

    batch_size: int = setting(64, ge=1)
    flip: bool = False  # average the features of the image and its mirror
    dtype: str = setting("fp32", choices=tuple(DTYPES))
    distance: str = setting("cosine", choices=METRICS)
    rerank: RerankSettings = setting(default_factory=RerankSettings)
    retrieval: str = setting("dense", choices=RETRIEVALS)
    retrieval_k: int = setting(100, ge=1)  # with faiss: gallery items each query retrieves
    max_rank: int = setting(50, ge=10)  # the CMC's length; reports go up to Rank-10
    ap_mode: str = setting("standard", choices=AP_MODES)
    top_k: int = setting(10, ge=1)  # gallery items listed per query (predictions, figure)
    ranked_queries: int = setting(4, ge=1)  # worst and best queries drawn in the figure
    device: str | None = None  # feature extraction device; None = the trainer's accelerator
    embedding: EmbeddingEngineSettings = setting(default_factory=EmbeddingEngineSettings)
    text_retrieval: TextRetrievalSettings = setting(default_factory=TextRetrievalSettings)
    dataset: DatasetRef = setting(default_factory=DatasetRef)
