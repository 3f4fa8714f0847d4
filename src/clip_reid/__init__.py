"""CLIP-ReID person re-identification."""

from typing import Any

# Loaded on first use: Kedro imports this package to read settings, which must stay light.
_LAZY = {
    "FeatureExtractor": "clip_reid.inference.extractor",
    "GalleryIndex": "clip_reid.inference.gallery",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'clip_reid' has no attribute {name!r}")
