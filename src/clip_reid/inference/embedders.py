"""The gallery embedder of the chosen engine: a FeatureExtractor here, or Ray actors."""

from __future__ import annotations

from clip_reid.engine_settings import EmbeddingEngineSettings
from clip_reid.inference.extractor import FeatureExtractor
from clip_reid.inference.gallery import Embedder
from clip_reid.inference.gallery_store import StreamingEmbedder
from clip_reid.modeling.reid_checkpoint import ReidCheckpoint


def gallery_embedder(checkpoint: ReidCheckpoint, batch_size: int,
                     engine: EmbeddingEngineSettings) -> Embedder | StreamingEmbedder:
    """What the gallery is embedded with (see gallery_store.embed_into_faiss and
    embed_into_milvus); Ray is imported only for ``engine: ray``."""
    if engine.output == "parquet":  # Ray writes the rows; the store streams them (see ray_parquet)
        from clip_reid.inference.ray_parquet import ParquetRayEmbedder

        return ParquetRayEmbedder(checkpoint, engine, batch_size)
    if engine.engine == "ray":
        from clip_reid.inference.ray_embedding import RayEmbedder

        return RayEmbedder(checkpoint, engine, batch_size)
    return FeatureExtractor(checkpoint, batch_size=batch_size)
