"""The settings base: unknown keys, types, ranges and choices fail naming the parameter."""

from dataclasses import dataclass
from typing import ClassVar

import pytest

from clip_reid.settings_base import Settings, SettingsError, setting


@dataclass(frozen=True)
class _Inner(Settings):
    base_lr: float = setting(0.1, gt=0.0)
    milestones: tuple[int, ...] = setting((4, 8), ge=1)


@dataclass(frozen=True)
class _Outer(Settings):
    max_epochs: int = setting(10, ge=1)
    mode: str = setting("a", choices=("a", "b"))
    size: tuple[int, int] = setting((2, 1), ge=1)
    threshold: float | None = None
    inner: _Inner = setting(default_factory=_Inner)


def test_values_are_typed_and_lists_become_tuples():
    built = _Outer.from_params({"max_epochs": 3, "size": [4, 2], "threshold": 1,
                                "inner": {"base_lr": 1, "milestones": [1]}})
    assert built == _Outer(3, "a", (4, 2), 1.0, _Inner(1.0, (1,)))
    assert isinstance(built.inner.base_lr, float)
    assert built.to_dict()["size"] == [4, 2]
    assert _Outer.from_params(None) == _Outer()


@pytest.mark.parametrize(("params", "message"), [
    ({"max_epoch": 3}, r"Unknown parameter stage\.max_epoch\. Valid keys of stage: inner, "
                       r"max_epochs, mode, size, threshold"),
    ({"inner": {"bse_lr": 1.0}}, r"Unknown parameter stage\.inner\.bse_lr"),
    ({"max_epochs": 0}, r"stage\.max_epochs = 0 .*expected an integer >= 1"),
    ({"max_epochs": -1}, r"stage\.max_epochs = -1"),
    ({"max_epochs": 2.5}, r"stage\.max_epochs = 2\.5 .*expected an integer"),
    ({"max_epochs": True}, r"stage\.max_epochs = True"),
    ({"inner": {"base_lr": "abc"}}, r"stage\.inner\.base_lr = 'abc' .*expected a number > 0"),
    ({"inner": {"milestones": [0]}}, r"stage\.inner\.milestones = \[0\]"),
    ({"mode": "c"}, r"stage\.mode = 'c' .*one of 'a', 'b'"),
    ({"size": [1, 2, 3]}, r"stage\.size = \[1, 2, 3\] .*a list of 2 values"),
    ({"inner": 5}, r"stage\.inner = 5 .*key: value"),
])
def test_bad_parameters_are_named_with_their_value_and_what_is_allowed(params, message):
    with pytest.raises(SettingsError, match=message):
        _Outer.from_params(params, "stage")


def test_the_file_that_set_a_bad_key_is_named():
    def locate(name):
        return "conf/base/parameters_stage.yml" if name == "stage.mode" else None

    with pytest.raises(SettingsError, match=r"\(set in conf/base/parameters_stage.yml\)"):
        _Outer.from_params({"mode": "z"}, "stage", locate)


@dataclass(frozen=True)
class _Renamed(Settings):
    renamed: ClassVar[dict[str, str]] = {"metric": "distance"}

    distance: str = setting("cosine", choices=("cosine", "dot"))


def test_a_renamed_key_is_refused_with_its_new_name_and_the_file_that_set_it():
    def locate(name):
        return "conf/local/parameters.yml" if name == "block.metric" else None

    with pytest.raises(SettingsError, match=r"^Parameter block\.metric \(set in conf/local/"
                                            r"parameters\.yml\) is now called block\.distance: "
                                            r"rename the key \(e\.g\. block\.distance: 'dot'\)"):
        _Renamed.from_params({"metric": "dot"}, "block", locate)
    assert _Renamed.from_params({"distance": "dot"}, "block").distance == "dot"
