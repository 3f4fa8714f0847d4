"""Build CLIP models with open_clip: the paper's RN50 / ViT-B-16, tiny towers for CPU demos, and
an ImageNet CNN in place of the image tower (``image_tower``)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import open_clip
import torch
from open_clip.model import CLIPTextCfg

from clip_reid.modeling.image_tower import CLIP_TOWER, build_cnn_tower
from clip_reid.modeling.imagenet_weights import PACKAGED_WEIGHTS
from clip_reid.modeling.weights import (
    WeightsError,
    load_state_dict_strictly,
    openai_checkpoint,
    read_openai_state_dict,
)
from clip_reid.settings_base import Settings

# Tiny CPU-demo towers, as open_clip model configs: "tiny-rn" is CLIP's ModifiedResNet with one
# bottleneck per stage and 16 base channels; "tiny-vit" has 4 blocks of width 128 on 16-px patches.
# Both have a 2-layer, width-128 text transformer.
TINY_CONFIG_DIR = Path(__file__).parent / "model_configs"
# OpenAI's checkpoints were trained with QuickGELU; open_clip's plain configs use GELU.
_QUICK_GELU_ARCHS = {"RN50", "RN101", "RN50x4", "RN50x16", "RN50x64", "ViT-B-32", "ViT-B-16",
                     "ViT-L-14", "ViT-L-14-336"}


@dataclass(frozen=True)
class ClipSpec(Settings):
    """Which CLIP to build and where its weights come from.

    ``weights``: ``"random"`` (seeded by ``seed``), a path to an OpenAI checkpoint (TorchScript
    archive or state dict), ``"openai"`` (official URL, downloaded once into ``cache_dir``), or
    ``"open_clip:<tag>"`` (an open_clip pretrained tag, e.g. ``open_clip:laion2b_s34b_b88k``).

    ``image_tower``: ``"clip"`` (the arch's own) or a timm CNN (``tf_efficientnet_lite0``,
    ``tf_efficientnet_lite2``, ``mobilenetv2_100``, …) in its place, the text tower kept;
    ``image_weights`` of that CNN: ``"random"``, ``"package"`` (ImageNet weights of an installed
    pip package, offline), ``"timm"`` (timm's hub, online) or a state-dict file path.
    """

    arch: str = "tiny-rn"
    weights: str = "random"
    cache_dir: str | None = None
    seed: int = 0
    image_tower: str = CLIP_TOWER
    image_weights: str = "random"

    def __post_init__(self) -> None:
        if self.image_tower == CLIP_TOWER and self.image_weights != "random":
            raise ValueError(
                f"image_weights={self.image_weights!r} applies to a CNN image_tower; CLIP's own "
                "image tower takes its weights from model.clip.weights. Set image_tower (e.g. "
                "tf_efficientnet_lite2) or leave image_weights at 'random'."
            )
        if self.image_weights == "package" and self.image_tower not in PACKAGED_WEIGHTS:
            raise ValueError(
                f"No package ships weights for image_tower {self.image_tower!r}; "
                f"image_weights: package works with {sorted(PACKAGED_WEIGHTS)}."
            )

    @property
    def random_image_tower(self) -> bool:
        """Whether the image tower starts from random weights (its BN statistics then mean
        nothing until re-estimated on data)."""
        if self.image_tower == CLIP_TOWER:
            return self.weights == "random"
        return self.image_weights == "random"

    def untrained(self) -> ClipSpec:
        """The same architecture with random weights: a shell for a checkpoint's state dict,
        built without the original weights files or packages."""
        return dataclasses.replace(self, weights="random", image_weights="random")


def _register_tiny_configs() -> None:
    if "tiny-rn" not in open_clip.list_models():
        open_clip.add_model_config(TINY_CONFIG_DIR)


def _known_arch(arch: str) -> str:
    """``arch``, checked against open_clip's model configs (the tiny ones registered first)."""
    _register_tiny_configs()
    if arch not in open_clip.list_models():
        raise ValueError(
            f"Unknown CLIP architecture {arch!r}. Use RN50, ViT-B-16, tiny-rn, tiny-vit or "
            "another open_clip model name (open_clip.list_models())."
        )
    return arch


def _create(arch: str, **kwargs: Any) -> torch.nn.Module:
    """The bare architecture: its weights are loaded next, or random is what was asked for."""
    _known_arch(arch)
    with _no_weights_notice_dropped():
        return open_clip.create_model(arch, force_quick_gelu=arch in _QUICK_GELU_ARCHS, **kwargs)


class _NoWeightsNotice(logging.Filter):
    """open_clip 3.3 logs "No pretrained weights loaded for model ..." (WARNING, root logger)
    for every model built without a pretrained tag, which ``_create`` always does."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.module == "factory" and "open_clip" in record.pathname
                    and record.getMessage().startswith("No pretrained weights loaded"))


@contextmanager
def _no_weights_notice_dropped() -> Iterator[None]:
    root = logging.getLogger()
    notice = _NoWeightsNotice()
    root.addFilter(notice)
    try:
        yield
    finally:
        root.removeFilter(notice)


def load_clip(spec: ClipSpec) -> torch.nn.Module:
    """An open_clip CLIP model in eval mode, fp32, on the CPU, with weights per ``spec``."""
    if spec.weights == "random":
        with torch.random.fork_rng():
            torch.manual_seed(spec.seed)
            model = _create(spec.arch)
    elif spec.weights.startswith("open_clip:"):
        tag = spec.weights.split(":", 1)[1]
        try:
            model = open_clip.create_model(spec.arch, pretrained=tag, cache_dir=spec.cache_dir)
        except Exception as error:
            raise WeightsError(
                f"Cannot load open_clip weights {spec.arch}/{tag}: {error}. Offline, download "
                "them on a connected machine into the same cache_dir first."
            ) from error
    else:
        if spec.weights == "openai":
            cache = Path(spec.cache_dir) if spec.cache_dir else None
            path = openai_checkpoint(spec.arch, cache)
        else:
            path = Path(spec.weights)
        state = read_openai_state_dict(path)
        model = _create(spec.arch)
        load_state_dict_strictly(model, state, str(path))
    if spec.image_tower != CLIP_TOWER:
        embed_dim = open_clip.get_model_config(spec.arch)["embed_dim"]
        model.visual = build_cnn_tower(spec.image_tower, spec.image_weights, embed_dim, spec.seed)
    return model.float().eval()


def tokenizer_for(arch: str):
    """The tokenizer of ``arch`` (CLIP's BPE, bundled with open_clip, works offline)."""
    _register_tiny_configs()
    return open_clip.get_tokenizer(arch)


def text_context_length(arch: str) -> int:
    """Token positions of ``arch``'s text tower (77 for CLIP), read from its open_clip config
    without building the model; a config that leaves it out gets open_clip's own default."""
    text_cfg = open_clip.get_model_config(_known_arch(arch))["text_cfg"]
    return int(text_cfg.get("context_length", CLIPTextCfg.context_length))
