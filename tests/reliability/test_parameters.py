"""Parameters that run wrong: `max_epochs: -1`, `max_epochs: 0`, `batch_size: 0` and
`optimizer.base_lr: abc` are refused at run start, naming the parameter, its value, where it was
set and what is allowed, before any node runs (the run-start hook validates every block).

End to end, as typed (`kedro run --params ...` stops before any node):
tests/test_kedro_run.py::test_a_bad_parameter_stops_the_run_before_any_node.
"""

import copy

import click
import pytest
from builders import base_parameters
from reliability.run_start import start_run
from toy_training import Toy, toy_loader, toy_settings

from clip_reid.modeling.trainer import TrainingInterrupted, build_trainer, raise_if_interrupted
from clip_reid.project.cli import run
from clip_reid.project.hooks import ParameterValidationHook
from clip_reid.project.parameters import ParameterFiles, validate_parameters
from clip_reid.settings_base import SettingsError

CASES = [
    ("prompt_learning.max_epochs", -1, "an integer >= 1"),
    ("encoder_training.max_epochs", 0, "an integer >= 1"),
    ("caption_finetune.max_epochs", 0, "an integer >= 1"),
    ("prompt_learning.batch_size", 0, "an integer >= 1"),
    ("encoder_training.batch_size", 0, "an integer >= 1"),
    ("encoder_training.optimizer.base_lr", "abc", "a number > 0.0"),
    ("prompt_learning.optimizer.base_lr", "abc", "a number > 0.0"),
]


def _nested(dotted: str, value) -> dict:
    tree = value
    for part in reversed(dotted.split(".")):
        tree = {part: tree}
    return tree


def _params(tmp_path, dotted: str, value) -> dict:
    params = copy.deepcopy(base_parameters("model", "captions", "prompt_learning",
                                           "encoder_training", "evaluation", "inference"))
    params["seed"] = 0
    for stage in ("prompt_learning", "encoder_training", "caption_finetune"):
        params[stage]["work_dir"] = str(tmp_path / stage)
    *path, leaf = dotted.split(".")
    node = params
    for part in path:
        node = node[part]
    node[leaf] = value
    return params


@pytest.mark.parametrize(("dotted", "value", "allowed"), CASES)
def test_a_bad_value_given_with_params_is_refused_at_run_start(tmp_path, dotted, value, allowed):
    with pytest.raises(SettingsError) as raised:
        start_run(_params(tmp_path, dotted, value), _nested(dotted, value))
    assert str(raised.value) == (f"Parameter {dotted} = {value!r} (set in --params) is invalid: "
                                 f"expected {allowed}.")
    assert not list(tmp_path.iterdir())  # nothing was created: no work folder, no output


def test_a_bad_value_in_a_file_names_the_file(tmp_path):
    with pytest.raises(SettingsError) as raised:
        start_run(_params(tmp_path, "encoder_training.max_epochs", 0), {})
    assert "encoder_training.max_epochs = 0 (set in " in str(raised.value)
    assert "conf/base/parameters_encoder_training.yml) is invalid" in str(raised.value)


def test_the_check_runs_before_the_other_hooks():
    """Before kedro-mlflow opens a run (so a refused run leaves no MLflow record either)."""
    assert ParameterValidationHook.before_pipeline_run.kedro_impl["tryfirst"] is True


def test_zero_epochs_never_counts_as_finished(tmp_path):
    """The second line of defence for max_epochs: 0 (a library caller skipping the check): the
    stage raises instead of saving an untrained model as if trained."""
    trainer = build_trainer(toy_settings(), 0, tmp_path, "toy")
    trainer.fit(Toy(), toy_loader())
    with pytest.raises(TrainingInterrupted, match="Training stopped at epoch 0 of 0"):
        raise_if_interrupted(trainer, tmp_path)


@pytest.mark.parametrize(("given", "runtime", "nearest"), [
    ("encoder_trainig.max_epochs", {"encoder_trainig": {"max_epochs": 1}}, "encoder_training"),
    ("evalution.distance", {"evalution": {"distance": "dot"}}, "evaluation"),
    ("seeed", {"seeed": 1}, "seed"),
])
def test_a_misspelt_block_given_with_params_is_refused(tmp_path, given, runtime, nearest):
    """A misspelt top-level key was ignored and the run used the defaults."""
    params = _params(tmp_path, "seed", 0) | runtime
    with pytest.raises(SettingsError) as raised:
        start_run(params, runtime)
    block = given.split(".")[0]
    assert str(raised.value).startswith(f"Unknown parameter {block} (set in --params). Did you "
                                        f"mean {nearest}? Valid top-level keys: ")
    assert not list(tmp_path.iterdir())


def test_a_misspelt_block_in_a_parameters_file_names_the_file(tmp_path):
    conf = tmp_path / "conf"
    (conf / "base").mkdir(parents=True)
    (conf / "local").mkdir()
    (conf / "local" / "parameters.yml").write_text("evalution:\n  distance: dot\n")
    params = _params(tmp_path, "seed", 0) | {"evalution": {"distance": "dot"}}
    with pytest.raises(SettingsError) as raised:
        validate_parameters(params, ParameterFiles(conf, ["base", "local"]))
    assert str(raised.value).startswith(f"Unknown parameter evalution (set in "
                                        f"{conf / 'local' / 'parameters.yml'}). Did you mean "
                                        "evaluation? ")


def _cli_params(value: str) -> dict:
    return run.make_context("run", ["--params", value]).params["params"]


@pytest.mark.parametrize(("value", "expected"), [
    ('q=["a ] b", c]', {"q": ["a ] b", "c"]}),
    ("q=['a, b', c],k=2", {"q": ["a, b", "c"], "k": 2}),
    ('x="1,2"', {"x": "1,2"}),
    ("q=[it's red, a man]", {"q": ["it's red", "a man"]}),  # an apostrophe is no quote
])
def test_a_bracket_or_comma_inside_quotes_belongs_to_the_value(value, expected):
    assert _cli_params(value) == expected


@pytest.mark.parametrize(("value", "message"), [
    ("a={b:}", "the value of `a` ('{b:}') is not valid YAML (while scanning a plain scalar"),
    ("a=@x", "the value of `a` ('@x') is not valid YAML"),
    ("a={b:", "'a={b:' is not valid YAML (while parsing a flow node"),
    ('a="x', "'a=\"x' is not valid YAML (while scanning a quoted scalar"),
])
def test_a_value_that_is_not_yaml_gets_a_usage_message(value, message):
    with pytest.raises(click.UsageError) as raised:
        _cli_params(value)
    assert str(raised.value).startswith(f"Invalid format of `params` option: {message}")
