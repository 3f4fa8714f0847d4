"""The recipe environments, merged over base as Kedro merges them, carry the paper's values."""

import pytest
from builders import REPO_ROOT
from kedro.config import OmegaConfigLoader

from clip_reid.settings import CONFIG_LOADER_ARGS


def _parameters(env: str) -> dict:
    loader = OmegaConfigLoader(str(REPO_ROOT / "conf"), env=env, **{
        k: v for k, v in CONFIG_LOADER_ARGS.items() if k != "default_run_env"
    })
    return loader["parameters"]


@pytest.mark.parametrize(
    ("env", "arch", "stage1_epochs", "stage2"),
    [
        ("market1501_rn50", "RN50", 60,
         dict(max_epochs=120, base_lr=3.5e-4, weight_decay=5e-4, warmup_factor=0.01,
              milestones=[40, 70], id=1.0)),
        ("market1501_vit_b16", "ViT-B-16", 120,
         dict(max_epochs=60, base_lr=5e-6, weight_decay=1e-4, warmup_factor=0.1,
              milestones=[30, 50], id=0.25)),
    ],
)
def test_recipe_reference_values(env, arch, stage1_epochs, stage2):
    params = _parameters(env)
    assert params["model"]["clip"] == {"arch": arch, "weights": "openai", "cache_dir": None,
                                       "seed": 0}
    assert params["model"]["image_size"] == [256, 128]
    stage1 = params["prompt_learning"]
    assert stage1["max_epochs"] == stage1_epochs and stage1["batch_size"] == 64
    assert stage1["optimizer"] == {"base_lr": 3.5e-4, "weight_decay": 1e-4, "warmup_epochs": 5,
                                   "warmup_lr": 1e-5, "min_lr": 1e-6}
    assert stage1["n_ctx"] == 4 and stage1["caption_mode"] == "none"
    enc = params["encoder_training"]
    optimizer = enc["optimizer"]
    assert enc["max_epochs"] == stage2["max_epochs"]
    assert (enc["batch_size"], enc["num_instances"]) == (64, 4)
    assert optimizer["base_lr"] == stage2["base_lr"]
    assert optimizer["weight_decay"] == optimizer["weight_decay_bias"] == stage2["weight_decay"]
    assert optimizer["warmup_epochs"] == 10
    assert optimizer["warmup_factor"] == stage2["warmup_factor"]
    assert optimizer["milestones"] == stage2["milestones"] and optimizer["gamma"] == 0.1
    assert optimizer["bias_lr_factor"] == 2.0
    assert (enc["loss"]["label_smoothing"], enc["loss"]["triplet_margin"]) == (0.1, 0.3)
    assert enc["loss"]["weights"] == {"id": stage2["id"], "triplet": 1.0, "i2t": 1.0}
    assert enc["augmentation"] == {"flip_prob": 0.5, "padding": 10, "erasing_prob": 0.5}
    # soft merge: keys the recipe does not set still come from base
    assert params["ingestion"]["verify_images"] is True
