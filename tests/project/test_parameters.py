"""Run-start validation of every block the stages read, against the project's own YAML. (The
issue-14 cases, bad max_epochs/batch_size/base_lr and foreign work folders, are in
tests/reliability/test_parameters.py and test_data_loss.py.)"""

import copy

import pytest
from builders import REPO_ROOT, base_parameters

from clip_reid.project.parameters import SECTIONS, ParameterFiles, validate_parameters
from clip_reid.settings_base import SettingsError

STAGE_FILES = ("model", "captions", "prompt_learning", "encoder_training", "evaluation",
               "inference")


@pytest.fixture
def params(tmp_path):
    """The base parameters, with work folders under tmp_path."""
    values = copy.deepcopy(base_parameters(*STAGE_FILES)) | {"seed": 0}
    for stage in ("caption_finetune", "prompt_learning", "encoder_training"):
        values[stage]["work_dir"] = str(tmp_path / stage)
    return values


def test_the_base_configuration_is_valid(params):
    settings = validate_parameters(params)
    assert set(settings) == set(SECTIONS)
    assert settings["encoder_training"].loss.triplet_margin == 0.3


@pytest.mark.parametrize(("section", "key", "value", "message"), [
    ("evaluation", "distanse", "cosine", r"Unknown parameter evaluation\.distanse"),
    ("evaluation", "distance", "cosin", r"evaluation\.distance = 'cosin' .*'cosine'"),
    ("trainer", "precision", "fp16", r"trainer\.precision = 'fp16'"),
])
def test_a_bad_value_anywhere_is_named(params, section, key, value, message):
    params[section][key] = value
    with pytest.raises(SettingsError, match=message):
        validate_parameters(params)


def test_the_file_or_flag_that_set_a_parameter_is_found():
    locate = ParameterFiles(REPO_ROOT / "conf", ["base", "market1501_rn50"],
                            {"evaluation": {"distanse": "cosine"}})
    assert locate("evaluation.distanse") == "--params"
    assert locate("encoder_training.max_epochs").endswith("market1501_rn50/parameters.yml")
    assert locate("evaluation.top_k").endswith("base/parameters_evaluation.yml")
    assert locate("evaluation.nothing") is None
