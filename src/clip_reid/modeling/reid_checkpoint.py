"""A trained (or baseline) ReID model as one typed artifact: what rebuilds the network, its
weights, the pixel normalisation of its test transform, the optional text tower, and a stable
fingerprint that every "was this made by the same model?" check compares.

On disk it is a plain dict of tensors, numbers and strings (``to_state`` / ``from_state``), so
``torch.load(weights_only=True)`` reads it and files written before this class still load.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.transforms import v2 as T

from clip_reid.data.transforms import build_test_transform
from clip_reid.modeling.checkpoint_file import load_checkpoint_file
from clip_reid.modeling.clip_factory import load_clip
from clip_reid.modeling.reid_model import ClipReidModel, ReidConfig
from clip_reid.modeling.text_encoder import TextEncoder
from clip_reid.modeling.text_tower import build_text_tower, text_tower_weights
from clip_reid.modeling.weights import load_state_dict_strictly

FINGERPRINT_HEX_CHARS = 16
_CORE_KEYS = ("config", "state_dict", "normalization", "text_tower", "fingerprint")
_NECKS = ("bottleneck.weight", "bottleneck_proj.weight")


class ModelMismatchError(ValueError):
    """Features (a gallery, a feature set) were made by another model than the one in use."""


class MissingTextTowerError(ValueError):
    """The checkpoint predates stored text towers: text queries need a retrained model."""


@dataclass(frozen=True)
class Normalization:
    """Pixel mean and std of the test transform (per RGB channel)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, value: Mapping[str, Sequence[float]] | Normalization) -> Normalization:
        if isinstance(value, Normalization):
            return value
        if not isinstance(value, Mapping) or set(value) != {"mean", "std"}:
            found = sorted(value) if isinstance(value, Mapping) else type(value).__name__
            raise ValueError(f"normalization needs exactly mean and std, got {found}.")
        return cls(tuple(float(x) for x in value["mean"]), tuple(float(x) for x in value["std"]))

    def to_dict(self) -> dict[str, tuple[float, ...]]:
        return {"mean": self.mean, "std": self.std}


@dataclass(frozen=True, eq=False)
class ReidCheckpoint:
    """Everything test time needs of a ReID model. ``metadata`` holds what training adds
    (``final_metrics``, ``epochs`` ...), which never changes the features or the fingerprint."""

    config: ReidConfig
    state_dict: Mapping[str, Tensor]
    normalization: Normalization
    text_tower: Mapping[str, Tensor] | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    published_fingerprint: str | None = None  # named in served copies: no hashing per request

    @classmethod
    def from_model(cls, model: ClipReidModel, normalization: Mapping[str, Sequence[float]],
                   text_tower: nn.Module | None = None, **metadata: Any) -> ReidCheckpoint:
        """The checkpoint of ``model`` (weights copied to the CPU); ``text_tower`` is the CLIP
        model whose text tower maps sentences into the image projection's space."""
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        text = None if text_tower is None else text_tower_weights(text_tower)
        return cls(model.config, state, Normalization.of(normalization), text, metadata)

    @classmethod
    def from_state(cls, state: Any, source: str = "the ReID checkpoint") -> ReidCheckpoint:
        """Read what ``to_state`` wrote; a missing part is an error naming ``source``."""
        if not isinstance(state, Mapping) or not {"config", "state_dict"} <= set(state):
            raise ValueError(
                f"{source} is not a ReID model checkpoint: expected 'config', 'state_dict' and "
                "'normalization' (the encoder_training pipeline's reid_model).")
        if "normalization" not in state:
            raise ValueError(
                f"{source} lacks its pixel 'normalization' (mean/std), so test preprocessing "
                "cannot be reproduced: re-save it with the encoder_training pipeline.")
        try:
            config = ReidConfig.from_dict(state["config"])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{source} has no valid 'config': {error}") from error
        tower = state.get("text_tower")
        return cls(config, dict(state["state_dict"]), Normalization.of(state["normalization"]),
                   tower["state_dict"] if isinstance(tower, Mapping) else None,
                   {k: v for k, v in state.items() if k not in _CORE_KEYS},
                   state.get("fingerprint"))

    @classmethod
    def load(cls, path: str | Path) -> ReidCheckpoint:
        """A checkpoint file written by the catalog's ``reid_model`` entry."""
        state = load_checkpoint_file(
            path, "copy it again, or re-run the encoder_training pipeline that writes it")
        return cls.from_state(state, str(path))

    def to_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"config": self.config.to_dict(),
                                 "state_dict": dict(self.state_dict),
                                 "normalization": self.normalization.to_dict(), **self.metadata}
        if self.text_tower is not None:
            state["text_tower"] = {"state_dict": dict(self.text_tower)}
        if self.published_fingerprint is not None:
            state["fingerprint"] = self.published_fingerprint
        return state

    def published(self) -> ReidCheckpoint:
        """This checkpoint naming its own fingerprint, for serving."""
        return ReidCheckpoint(self.config, self.state_dict, self.normalization, self.text_tower,
                              self.metadata, self.fingerprint)

    @cached_property
    def fingerprint(self) -> str:
        """Hash of the config, the pixel normalisation and every weight (names, dtypes, shapes,
        bytes); independent of the device and of the metadata, which do not change features."""
        if self.published_fingerprint is not None:
            return self.published_fingerprint
        digest = hashlib.blake2b(digest_size=FINGERPRINT_HEX_CHARS // 2)
        header = {"config": self.config.to_dict(), "normalization": self.normalization.to_dict()}
        digest.update(json.dumps(header, sort_keys=True, default=list).encode())
        for key in sorted(self.state_dict):
            tensor = self.state_dict[key].detach().cpu().contiguous()
            digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
        return digest.hexdigest()

    def require_model(self, fingerprint: str, what: str, fix: str) -> None:
        """ModelMismatchError unless ``what`` (e.g. "gallery_index") was made by this model."""
        if fingerprint != self.fingerprint:
            raise ModelMismatchError(
                f"{what} was embedded by model {fingerprint or '<unknown>'}, not by this model "
                f"({self.fingerprint}): {fix}")

    @property
    def feature_dim(self) -> int:
        """Test feature width, concat(final, projection), read from the BN necks (no network)."""
        return int(sum(self.state_dict[name].numel() for name in _NECKS))

    @property
    def projection_dim(self) -> int:
        """Width of the image projection: the test feature's last columns, the text space."""
        return int(self.state_dict[_NECKS[1]].numel())

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.config.image_size)

    @property
    def has_text_tower(self) -> bool:
        return self.text_tower is not None

    def model(self) -> ClipReidModel:
        """The network in eval mode, loaded strictly (no original CLIP file needed)."""
        model = ClipReidModel(self.config, load_clip(self.config.clip.untrained()))
        load_state_dict_strictly(model, self.state_dict, "the ReID checkpoint")
        return model.eval()

    def test_transform(self) -> T.Compose:
        """The preprocessing the model was evaluated with."""
        return build_test_transform(self.config.image_size, self.normalization.mean,
                                    self.normalization.std)

    def text_encoder(self) -> TextEncoder:
        """The stored text tower (eval mode, CPU, its arch's tokenizer), loaded strictly."""
        if self.text_tower is None:
            raise MissingTextTowerError(
                "This ReID checkpoint holds no text tower (it was trained before text search "
                "existed), so it cannot embed text queries. Retrain stage 2 (kedro run "
                "--pipelines encoder_training, or --pipelines full) to get a model that answers "
                "text queries; image queries work with it as they are.")
        return build_text_tower(self.config.clip, self.text_tower)
