"""The CLIP backbone the training stages start from, as an artifact the catalog can version.

Without caption fine-tuning it records only the ``ClipSpec`` (the weights come from their source
each time); after fine-tuning it also carries the tuned weights. Either way stages 1 and 2 load
the same model through :meth:`ClipBackbone.clip_model`, and a backbone built for another
architecture is refused instead of silently mixed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from clip_reid.modeling.clip_factory import ClipSpec, load_clip
from clip_reid.modeling.weights import load_state_dict_strictly


@dataclass(frozen=True, eq=False)
class ClipBackbone:
    """A ClipSpec, plus its caption-tuned weights when fine-tuning ran (``metadata``: what the
    fine-tuning reports, e.g. ``pairs`` and ``final_loss``)."""

    spec: ClipSpec
    tuned_weights: Mapping[str, Tensor] | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, spec: ClipSpec, tuned: nn.Module | None = None, **metadata: Any) -> ClipBackbone:
        """The backbone of ``spec``; with ``tuned``, that model's weights (copied to the CPU)."""
        weights = None if tuned is None else {k: v.detach().cpu()
                                              for k, v in tuned.state_dict().items()}
        return cls(spec, weights, metadata)

    @property
    def finetuned(self) -> bool:
        return self.tuned_weights is not None

    def to_state(self) -> dict[str, Any]:
        return {"clip": self.spec.to_dict(), "finetuned": self.finetuned,
                "state_dict": dict(self.tuned_weights or {}), **self.metadata}

    @classmethod
    def from_state(cls, state: Any, source: str = "the clip_backbone") -> ClipBackbone:
        try:
            spec = ClipSpec(**state["clip"])
        except (KeyError, TypeError) as error:
            raise ValueError(f"{source} is not a CLIP backbone checkpoint (no valid 'clip' "
                             f"spec): {error}. Re-run the captions pipeline.") from error
        metadata = {k: v for k, v in state.items() if k not in ("clip", "finetuned", "state_dict")}
        return cls(spec, dict(state["state_dict"]) if state.get("finetuned") else None, metadata)

    def clip_model(self, expected: ClipSpec) -> nn.Module:
        """The CLIP model (eval mode), after checking it is the one the parameters configure."""
        if _identity(self.spec) != _identity(expected):
            raise ValueError(
                f"The clip_backbone was built for {self.spec} but the parameters ask for "
                f"{expected}. Re-run the captions pipeline (kedro run --pipelines captions) with "
                "these parameters.")
        model = load_clip(self.spec)
        if self.tuned_weights is not None:
            load_state_dict_strictly(model, self.tuned_weights, "the caption-tuned clip_backbone")
        return model.eval()


def _identity(spec: ClipSpec) -> tuple[str, str, int, str, str]:
    """What makes two specs the same model (the download cache folder does not)."""
    return spec.arch, spec.weights, spec.seed, spec.image_tower, spec.image_weights
