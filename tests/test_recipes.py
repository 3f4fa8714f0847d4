"""The recipe environments, merged over base as Kedro merges them, carry the official values.

Every value of the official configs/person/cnn_clipreid.yml and vit_clipreid.yml that the project
uses is checked on the merged parameters, with the official key beside it. Official sources
(github.com/Syliz517/CLIP-ReID): cnn = configs/person/cnn_clipreid.yml, vit =
configs/person/vit_clipreid.yml, defaults = config/defaults.py, README = README.md,
metrics = utils/metrics.py. The person configs serve every person dataset (DATASETS.NAMES is set
per run), so the MSMT17 recipes carry the same values as the Market-1501 ones.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from builders import REPO_ROOT
from kedro.config import OmegaConfigLoader

from clip_reid.modeling.model_settings import ModelSettings
from clip_reid.project.parameters import validate_parameters
from clip_reid.settings import CONFIG_LOADER_ARGS

CONF = REPO_ROOT / "conf"

# Values both official person configs share (key: the official name; cnn and vit agree).
COMMON = {
    "seed": 1234,                                         # defaults SOLVER.SEED
    "model.clip.weights": "openai",                       # MODEL.PRETRAIN_CHOICE (CLIP's weights)
    "model.image_size": [256, 128],                       # INPUT.SIZE_TRAIN, INPUT.SIZE_TEST
    "model.neck_feat": "before",                          # TEST.NECK_FEAT
    "model.pixel_mean": None,                             # INPUT.PIXEL_MEAN (from the arch, below)
    "model.pixel_std": None,                              # INPUT.PIXEL_STD (from the arch, below)
    "trainer.precision": "16-mixed",                      # amp.autocast + GradScaler (processor_*)
    "trainer.devices": 1,                                 # README: CUDA_VISIBLE_DEVICES=0
    "trainer.num_workers": 8,                             # DATALOADER.NUM_WORKERS
    "prompt_learning.batch_size": 64,                     # SOLVER.STAGE1.IMS_PER_BATCH
    "prompt_learning.optimizer.base_lr": 3.5e-4,          # SOLVER.STAGE1.BASE_LR
    "prompt_learning.optimizer.warmup_lr": 1e-5,          # SOLVER.STAGE1.WARMUP_LR_INIT
    "prompt_learning.optimizer.min_lr": 1e-6,             # SOLVER.STAGE1.LR_MIN
    "prompt_learning.optimizer.weight_decay": 1e-4,       # SOLVER.STAGE1.WEIGHT_DECAY
    "prompt_learning.optimizer.warmup_epochs": 5,         # SOLVER.STAGE1.WARMUP_EPOCHS
    "prompt_learning.n_ctx": 4,                           # PromptLearner "… a X X X X person."
    "prompt_learning.class_word": None,                   # ctx_init "person": the layout's word
    "prompt_learning.caption_mode": "none",               # no captions in the paper
    "prompt_learning.graph_sampling.enabled": False,      # stage 1 shuffles images (shuffle=True)
    "caption_finetune.enabled": False,                    # CLIP is used as released
    "captions.sources.attributes": None,                  # no captions in the paper
    "encoder_training.batch_size": 64,                    # SOLVER.STAGE2.IMS_PER_BATCH
    "encoder_training.num_instances": 4,                  # DATALOADER.NUM_INSTANCE
    "encoder_training.sampler": "official",               # DATALOADER.SAMPLER 'softmax_triplet'
    "encoder_training.augmentation.flip_prob": 0.5,       # INPUT.PROB
    "encoder_training.augmentation.padding": 10,          # INPUT.PADDING
    "encoder_training.augmentation.erasing_prob": 0.5,    # INPUT.RE_PROB
    "encoder_training.optimizer.warmup_epochs": 10,       # SOLVER.STAGE2.WARMUP_ITERS (per epoch)
    "encoder_training.optimizer.bias_lr_factor": 2.0,     # SOLVER.STAGE2.BIAS_LR_FACTOR
    "encoder_training.optimizer.gamma": 0.1,              # SOLVER.STAGE2.GAMMA
    "encoder_training.loss.label_smoothing": 0.1,    # MODEL.IF_LABELSMOOTH 'on' (epsilon 0.1)
    "encoder_training.loss.triplet_margin": 0.3,     # defaults SOLVER.MARGIN
    "encoder_training.loss.weights.triplet": 1.0,         # MODEL.TRIPLET_LOSS_WEIGHT
    "encoder_training.loss.weights.i2t": 1.0,             # MODEL.I2T_LOSS_WEIGHT
    "evaluation.batch_size": 64,                          # TEST.IMS_PER_BATCH
    "evaluation.distance": "cosine",                      # TEST.FEAT_NORM + euclidean: same order
    "evaluation.dtype": "fp32",                           # do_inference runs without autocast
    "evaluation.flip": False,                             # no flip at test time
    "evaluation.max_rank": 50,                            # metrics R1_mAP_eval(max_rank=50)
    "evaluation.ap_mode": "standard",                     # metrics eval_func (non-interpolated AP)
    "evaluation.rerank.enabled": False,                   # TEST.RE_RANKING
    "evaluation.rerank.k1": 50,                           # metrics re_ranking(k1=50)
    "evaluation.rerank.k2": 15,                           # metrics re_ranking(k2=15)
    "evaluation.rerank.lambda_value": 0.3,                # metrics re_ranking(lambda_value=0.3)
    "evaluation.rerank.distance": "euclidean",            # metrics/reranking.py squared euclidean
    "evaluation.rerank.normalize": True,                  # TEST.FEAT_NORM 'yes' before re_ranking
}

RN50 = {
    "model.clip.arch": "RN50",                            # cnn MODEL.NAME
    "model.use_sie": False,                               # defaults MODEL.SIE_CAMERA
    "prompt_learning.max_epochs": 60,                     # cnn SOLVER.STAGE1.MAX_EPOCHS
    "encoder_training.max_epochs": 120,                   # cnn SOLVER.STAGE2.MAX_EPOCHS
    "encoder_training.optimizer.base_lr": 3.5e-4,         # cnn SOLVER.STAGE2.BASE_LR
    "encoder_training.optimizer.weight_decay": 5e-4,      # cnn SOLVER.STAGE2.WEIGHT_DECAY
    "encoder_training.optimizer.weight_decay_bias": 5e-4,  # cnn SOLVER.STAGE2.WEIGHT_DECAY_BIAS
    "encoder_training.optimizer.warmup_factor": 0.01,     # cnn SOLVER.STAGE2.WARMUP_FACTOR
    "encoder_training.optimizer.milestones": [40, 70],    # cnn SOLVER.STAGE2.STEPS
    "encoder_training.loss.weights.id": 1.0,              # cnn MODEL.ID_LOSS_WEIGHT
}
RN50_NORMALIZATION = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # cnn INPUT.PIXEL_MEAN/STD

VIT = {
    "model.clip.arch": "ViT-B-16",                        # vit MODEL.NAME
    "model.stride": 16,                                   # vit MODEL.STRIDE_SIZE [16, 16]
    "model.use_sie": False,                               # vit "# SIE_CAMERA: True" (commented)
    "prompt_learning.max_epochs": 120,                    # vit SOLVER.STAGE1.MAX_EPOCHS
    "encoder_training.max_epochs": 60,                    # vit SOLVER.STAGE2.MAX_EPOCHS
    "encoder_training.optimizer.base_lr": 5e-6,           # vit SOLVER.STAGE2.BASE_LR
    "encoder_training.optimizer.weight_decay": 1e-4,      # vit SOLVER.STAGE2.WEIGHT_DECAY
    "encoder_training.optimizer.weight_decay_bias": 1e-4,  # vit SOLVER.STAGE2.WEIGHT_DECAY_BIAS
    "encoder_training.optimizer.warmup_factor": 0.1,      # vit SOLVER.STAGE2.WARMUP_FACTOR
    "encoder_training.optimizer.milestones": [30, 50],    # vit SOLVER.STAGE2.STEPS
    "encoder_training.loss.weights.id": 0.25,             # vit MODEL.ID_LOSS_WEIGHT
}
VIT_NORMALIZATION = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # vit INPUT.PIXEL_MEAN/STD

SIE_OLP = {
    "model.stride": 12,                                   # README MODEL.STRIDE_SIZE '[12, 12]'
    "model.use_sie": True,                                # README MODEL.SIE_CAMERA True
    "model.sie_coef": 1.0,                                # README MODEL.SIE_COE 1.0
}

MARKET1501 = {
    "dataset.name": "market1501",                         # DATASETS.NAMES ('market1501')
    "dataset.root": "data/01_raw/Market-1501-v15.09.15",  # datasets/market1501.py dataset_dir
    "dataset.source": "local",
}
MSMT17 = {
    "dataset.name": "msmt17",                             # DATASETS.NAMES ('msmt17')
    "dataset.root": "data/01_raw/MSMT17_V1",              # datasets/msmt17.py (V1 list files)
    "dataset.source": "local",
}

RECIPES = {
    "market1501_rn50": ({**COMMON, **RN50, **MARKET1501}, RN50_NORMALIZATION),
    "market1501_vit_b16": ({**COMMON, **VIT, **MARKET1501}, VIT_NORMALIZATION),
    "market1501_vit_b16_sie_olp": ({**COMMON, **VIT, **SIE_OLP, **MARKET1501}, VIT_NORMALIZATION),
    "msmt17_rn50": ({**COMMON, **RN50, **MSMT17}, RN50_NORMALIZATION),
    "msmt17_vit_b16": ({**COMMON, **VIT, **MSMT17}, VIT_NORMALIZATION),
    "msmt17_vit_b16_sie_olp": ({**COMMON, **VIT, **SIE_OLP, **MSMT17}, VIT_NORMALIZATION),
}


def _merged_parameters(env: str) -> dict:
    loader = OmegaConfigLoader(str(CONF), env=env, **{
        k: v for k, v in CONFIG_LOADER_ARGS.items() if k != "default_run_env"
    })
    return loader["parameters"]


def _base_parameters() -> dict:
    params: dict = {}
    for path in sorted((CONF / "base").glob("parameters*.yml")):
        params |= yaml.safe_load(path.read_text()) or {}
    return params


def _lookup(params: dict, dotted: str) -> Any:
    value: Any = params
    for key in dotted.split("."):
        assert isinstance(value, dict) and key in value, f"parameter {dotted!r} is missing"
        value = value[key]
    return value


def _leaves(tree: dict, prefix: str = "") -> dict[str, Any]:
    leaves = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            leaves |= _leaves(value, f"{prefix}{key}.")
        else:
            leaves[f"{prefix}{key}"] = value
    return leaves


# Environments that are not paper recipes (their values are this project's own).
NOT_RECIPES = {"base", "local", "cpu_small", "cpu_pretrained"}


def test_every_recipe_environment_is_checked():
    environments = {p.name for p in CONF.iterdir() if p.is_dir()} - NOT_RECIPES
    assert environments == set(RECIPES)


@pytest.mark.parametrize("env", ["cpu_small", "cpu_pretrained"])
def test_cpu_recipe_parameters_pass_the_run_start_check(env):
    validate_parameters(_merged_parameters(env))


@pytest.mark.parametrize("env", RECIPES)
def test_merged_recipe_has_every_official_value(env):
    expected, (mean, std) = RECIPES[env]
    params = _merged_parameters(env)
    for dotted, value in expected.items():
        assert _lookup(params, dotted) == value, f"{env}: {dotted}"
    assert ModelSettings.from_params(params["model"]).normalization() == (mean, std)
    # soft merge: keys the recipe does not set still come from base
    assert params["ingestion"]["verify_images"] is True


@pytest.mark.parametrize("env", RECIPES)
def test_recipe_is_only_deltas_over_base_each_citing_its_source(env):
    path = CONF / env / "parameters.yml"
    base = _base_parameters()
    for dotted, value in _leaves(yaml.safe_load(path.read_text())).items():
        assert _lookup(base, dotted) != value, f"{env} restates the base value of {dotted}"
    value_lines = [
        line for line in path.read_text().splitlines()
        if re.match(r"^\s*[\w]+:\s*[^\s#]", line)
    ]
    uncited = [line for line in value_lines if "#" not in line]
    assert not uncited, f"{env}: values without their official source: {uncited}"
