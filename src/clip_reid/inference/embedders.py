"""The gallery embedder of the chosen engine: a FeatureExtractor here, or Ray actors."""

from __future__ import annotations

from clip_reid.engine_settings import EmbeddingEngineSettings
from clip_reid.inference.extractor import FeatureExtractor
from clip_reid.inference.gallery import Embedder
from clip_reid.modeling.reid_checkpoint import ReidCheckpoint


def gallery_embedder(checkpoint: ReidCheckpoint, batch_size: int,
                     engine: EmbeddingEngineSettings) -> Embedder:
    """What ``GalleryIndex.build`` embeds with; Ray is imported only for ``engine: ray``."""
    if engine.engine == "ray":
        from clip_reid.inference.ray_embedding import RayEmbedder

        return RayEmbedder(checkpoint, engine, batch_size)
    return FeatureExtractor(checkpoint, batch_size=batch_size)
