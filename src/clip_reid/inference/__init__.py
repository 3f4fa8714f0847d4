"""Inference on new images without Kedro: image decoding, feature extraction (PyTorch or ONNX),
text queries, and an incremental, labelled gallery for open-set identification."""

from clip_reid.inference.extractor import FeatureExtractor
from clip_reid.inference.gallery import GalleryIndex
from clip_reid.inference.images import InvalidImageError, decode_image
from clip_reid.inference.text_queries import InvalidTextError
from clip_reid.metrics.open_set import UNKNOWN_PID

__all__ = ["UNKNOWN_PID", "FeatureExtractor", "GalleryIndex", "InvalidImageError",
           "InvalidTextError", "decode_image"]
