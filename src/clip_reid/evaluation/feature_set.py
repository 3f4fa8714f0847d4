"""Features of labelled images as one validated artifact (the query and gallery of evaluation)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from clip_reid.metrics.inputs import labels_array

STATE_KEYS = ("features", "pids", "camids", "paths")


@dataclass(frozen=True, eq=False)
class FeatureSet:
    """Row i is the feature of ``paths[i]``, identity ``pids[i]``, camera ``camids[i]``,
    embedded by the model whose fingerprint is ``fingerprint``. Checked once, here."""

    features: torch.Tensor
    pids: np.ndarray
    camids: np.ndarray
    paths: tuple[str, ...]
    fingerprint: str = ""

    def __post_init__(self) -> None:
        features = torch.as_tensor(self.features)
        if features.ndim != 2:
            raise ValueError(f"features must be 2-d (images, dim), got shape "
                             f"{tuple(features.shape)}.")
        count = len(features)
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "pids", labels_array(self.pids, "pids", count))
        object.__setattr__(self, "camids", labels_array(self.camids, "camids", count))
        object.__setattr__(self, "paths", tuple(str(path) for path in self.paths))
        if len(self.paths) != count:
            raise ValueError(f"{len(self.paths)} paths for {count} feature rows.")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def to_state(self) -> dict[str, Any]:
        return {"features": self.features, "pids": torch.tensor(self.pids),
                "camids": torch.tensor(self.camids), "paths": list(self.paths),
                "fingerprint": self.fingerprint}

    @classmethod
    def from_state(cls, state: Any, source: str = "the feature set") -> FeatureSet:
        if not isinstance(state, Mapping) or not set(STATE_KEYS) <= set(state):
            found = sorted(state) if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(f"{source} is not a feature set: expected {list(STATE_KEYS)}, "
                             f"found {found}. Re-run the evaluation pipeline that writes it.")
        return cls(state["features"], state["pids"], state["camids"], tuple(state["paths"]),
                   str(state.get("fingerprint", "")))
