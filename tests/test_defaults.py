"""The settings dataclasses are the one source of every default.

conf/base restates every key (with its comment, as the user's reference of what a block holds),
so each value there must equal the settings class default, except the keys the embedded demo
changes, listed below with the reason. A default changed in one place only fails here with the
key path and both values.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from kedro.config import OmegaConfigLoader

from clip_reid.project.parameters import SECTIONS, validate_parameters
from clip_reid.settings_base import SettingsError

CONF = Path(__file__).resolve().parents[1] / "conf"

# conf/base keys whose value is the demo's, not the library default: key -> why the demo differs.
DEMO_CHANGES = {
    "dataset.name": "the demo's own layout (synthetic pedestrians), not Market-1501",
    "dataset.root": "where the synthetic dataset is generated",
    "dataset.source": "generated on first use, not read from disk",
    "model.image_size": "half the paper's 256x128: the tiny CLIP trains in minutes on a CPU",
    "trainer.accelerator": "the demo runs on CPU everywhere (auto would pick a GPU when present)",
    "trainer.log_every_n_steps":
        "a demo epoch is 14 steps (946 crops / 64): about 3 loss points per epoch, not 1",
    "prompt_learning.max_epochs": "30, not the paper's 60: demo-sized",
    "encoder_training.max_epochs": "40, not the paper's 120: demo-sized",
    "encoder_training.optimizer.base_lr":
        "1e-3: a randomly initialised tiny CLIP trains from scratch (the paper: 3.5e-4)",
    "encoder_training.optimizer.warmup_epochs": "3, scaled to the 40-epoch demo (paper: 10)",
    "encoder_training.optimizer.milestones": "[28, 36], scaled to the 40-epoch demo (paper: 40/70)",
}
# Keys with no default anywhere: conf/base must set them.
REQUIRED = {"seed"}


def _leaves(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Dotted key -> value of every leaf; an empty block is a leaf (a dict-valued setting)."""
    if isinstance(tree, Mapping) and tree:
        for key, value in tree.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, tree


def _same(a: Any, b: Any) -> bool:
    """Equal as parameters: lists and tuples alike, 1 and 1.0 alike, but true is not 1."""
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _base_parameters() -> dict[str, Any]:
    loader = OmegaConfigLoader(conf_source=str(CONF), base_env="base", default_run_env="base",
                               merge_strategy={"parameters": "soft"})
    return loader["parameters"]


def _defaults() -> dict[str, Any]:
    return dict(_leaves({name: cls().to_dict() for name, cls in SECTIONS.items()}))


def disagreements(params: Mapping[str, Any]) -> list[str]:
    """Every leaf of ``params`` that differs from its settings default and is not a listed
    demo change, every listed demo change that no longer differs, and every leaf that is no
    settings field."""
    defaults, problems = _defaults(), []
    for key, value in _leaves(params):
        if key in REQUIRED:
            continue
        if key not in defaults:
            problems.append(f"{key} = {value!r} is no field of the settings classes")
        elif key in DEMO_CHANGES and _same(value, defaults[key]):
            problems.append(f"{key} = {value!r} equals the settings default: remove it from "
                            "DEMO_CHANGES")
        elif key not in DEMO_CHANGES and not _same(value, defaults[key]):
            problems.append(f"{key}: conf/base has {value!r}, the settings class {defaults[key]!r}"
                            " (change the default in the class, or list it in DEMO_CHANGES)")
    return problems


def test_conf_base_restates_the_settings_defaults_outside_the_demo_changes():
    assert disagreements(_base_parameters()) == []


def test_every_demo_change_names_a_key_of_conf_base():
    keys = {key for key, _ in _leaves(_base_parameters())}
    assert sorted(set(DEMO_CHANGES) - keys) == []


def test_a_default_changed_in_one_place_is_found_with_its_key():
    params = _base_parameters()
    params["caption_finetune"]["optimizer"]["visual_lr"] = 1e-5
    params["evaluation"]["rerank"]["distance"] = "cosine"
    params["model"]["image_size"] = [256, 128]  # a demo change back at the default
    assert sorted(disagreements(params)) == [
        "caption_finetune.optimizer.visual_lr: conf/base has 1e-05, the settings class 0.0001 "
        "(change the default in the class, or list it in DEMO_CHANGES)",
        "evaluation.rerank.distance: conf/base has 'cosine', the settings class 'euclidean' "
        "(change the default in the class, or list it in DEMO_CHANGES)",
        "model.image_size = [256, 128] equals the settings default: remove it from DEMO_CHANGES",
    ]


def test_a_key_absent_from_the_configuration_takes_the_settings_default():
    """What the run validates and the nodes build without a key is the class default."""
    params = _base_parameters()
    del params["caption_finetune"]["optimizer"], params["evaluation"]["rerank"]
    settings = validate_parameters(params, stages=())
    assert settings["caption_finetune"].optimizer == SECTIONS["caption_finetune"]().optimizer
    assert settings["evaluation"].rerank == SECTIONS["evaluation"]().rerank


def test_the_old_inference_metric_key_is_refused_with_its_new_name():
    params = _base_parameters()
    params["inference"]["metric"] = params["inference"].pop("distance")
    with pytest.raises(SettingsError, match=r"inference\.metric is now called "
                                            r"inference\.distance: rename the key"):
        validate_parameters(params, stages=())
