"""The CLIP backbone the training stages start from, as a checkpoint the catalog can version.

Without caption fine-tuning it records only the ``ClipSpec`` (the weights come from their source
each time); after fine-tuning it also carries the tuned weights. Either way stages 1 and 2 load
the same model through :func:`load_clip_backbone`, and a backbone built for another architecture
is refused instead of silently mixed in.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from clip_reid.modeling.clip_factory import ClipSpec, load_clip
from clip_reid.modeling.weights import load_state_dict_strictly


def clip_backbone_checkpoint(
    spec: ClipSpec, tuned: nn.Module | None = None, **metadata: Any
) -> dict[str, Any]:
    """The backbone as data: its spec, and its weights when they differ from the source's."""
    state = {} if tuned is None else {k: v.detach().cpu() for k, v in tuned.state_dict().items()}
    return {"clip": spec.to_dict(), "finetuned": tuned is not None, "state_dict": state,
            **metadata}


def is_finetuned(checkpoint: dict[str, Any]) -> bool:
    return bool(checkpoint.get("finetuned", False))


def _identity(spec: ClipSpec) -> tuple[str, str, int, str, str]:
    """What makes two specs the same model (the download cache folder does not)."""
    return spec.arch, spec.weights, spec.seed, spec.image_tower, spec.image_weights


def load_clip_backbone(checkpoint: dict[str, Any], expected: ClipSpec) -> nn.Module:
    """The CLIP model of ``checkpoint`` (eval mode), after checking it is the one configured."""
    try:
        spec = ClipSpec(**checkpoint["clip"])
    except (KeyError, TypeError) as error:
        raise ValueError(
            f"Not a CLIP backbone checkpoint (no valid 'clip' spec): {error}"
        ) from error
    if _identity(spec) != _identity(expected):
        raise ValueError(
            f"The clip_backbone was built for {spec} but the parameters ask for {expected}. "
            "Re-run the captions pipeline (kedro run --pipelines captions) with these parameters."
        )
    model = load_clip(spec)
    if is_finetuned(checkpoint):
        load_state_dict_strictly(model, checkpoint["state_dict"], "the caption-tuned clip_backbone")
    return model.eval()
