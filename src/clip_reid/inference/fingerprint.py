"""A short, stable identity of a ReID checkpoint, so caches (gallery features) can tell whether
the model that produced them is still the one in use."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch

FINGERPRINT_HEX_CHARS = 16
PUBLISHED_KEY = "fingerprint"  # set by ``published``: the served copy names its own fingerprint


def model_fingerprint(checkpoint: dict[str, Any]) -> str:
    """Hash of the checkpoint's config, pixel normalisation and every weight (names, dtypes,
    shapes, bytes). Independent of the device, the backend and the checkpoint's other metadata
    (epoch, timings), which do not change the features."""
    digest = hashlib.blake2b(digest_size=FINGERPRINT_HEX_CHARS // 2)
    header = {"config": checkpoint["config"], "normalization": checkpoint.get("normalization")}
    digest.update(json.dumps(header, sort_keys=True, default=list).encode())
    for key in sorted(checkpoint["state_dict"]):
        tensor = checkpoint["state_dict"][key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def published(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``checkpoint`` that names its fingerprint, so a server reading it hashes no
    weights per request (see ``checkpoint_fingerprint``)."""
    return {**checkpoint, PUBLISHED_KEY: model_fingerprint(checkpoint)}


def checkpoint_fingerprint(checkpoint: dict[str, Any]) -> str:
    """The fingerprint a published checkpoint names, else the one its weights hash to."""
    if PUBLISHED_KEY in checkpoint:
        return str(checkpoint[PUBLISHED_KEY])
    return model_fingerprint(checkpoint)
