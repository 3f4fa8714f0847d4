"""A colour-histogram ReID baseline: what matching on colour alone achieves on a dataset.

Used to check that the synthetic demo set is a ReID problem rather than a colour lookup.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from PIL import Image


def colour_histograms(paths: Iterable[str], bins_per_channel: int = 8) -> np.ndarray:
    """L2-normalised joint RGB histograms (bins³ values) of the images at ``paths``."""
    step = 256 // bins_per_channel
    features = []
    for path in paths:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.int64) // step
        codes = (pixels[..., 0] * bins_per_channel + pixels[..., 1]) * bins_per_channel
        histogram = np.bincount((codes + pixels[..., 2]).ravel(),
                                minlength=bins_per_channel**3).astype(np.float32)
        features.append(histogram / np.linalg.norm(histogram))
    return np.stack(features)
