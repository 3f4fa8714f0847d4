"""`--params` takes a bracketed list, e.g. several text queries in one value."""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd
import pytest
from kedro_project import copy_project, kedro, output

from clip_reid.project.cli import run

QUERIES = "text_search.queries=[a woman in a red top, a man with a backpack]"


def _params(value: str) -> dict:
    return run.make_context("run", ["--params", value]).params["params"]


def test_a_bracketed_list_is_one_value():
    assert _params(QUERIES) == {
        "text_search": {"queries": ["a woman in a red top", "a man with a backpack"]}}
    assert _params(f"{QUERIES},text_search.top_k=5,dataset.synthetic.seed=1") == {
        "text_search": {"queries": ["a woman in a red top", "a man with a backpack"],
                        "top_k": 5},
        "dataset": {"synthetic": {"seed": 1}}}
    assert _params("a={b: 1, c: [2, 3]}") == {"a": {"b": 1, "c": [2, 3]}}


@pytest.mark.parametrize("value, expected", [
    # the documented ";" spelling stays one string (the text_search node splits it)
    ("text_search.queries=a woman in a red top; a man with a backpack",
     {"text_search": {"queries": "a woman in a red top; a man with a backpack"}}),
    ("a.b=1, a.c=x,d=data/01_raw", {"a": {"b": 1, "c": "x"}, "d": "data/01_raw"}),
    ("", {}),
    ("x=1]", {"x": "1]"}),  # unpaired brackets: Kedro's parsing, unchanged
])
def test_everything_else_is_read_as_kedro_reads_it(value, expected):
    assert _params(value) == expected


@pytest.mark.parametrize("value, message", [
    ("a=1,b", "Item `b` must contain a key and a value separated by `=`."),
    ("=x", "Parameter key cannot be an empty string."),
    ("x=[1,2", "Item `2` must contain a key and a value separated by `=`."),  # Kedro's own
])
def test_malformed_params_get_kedros_messages(value, message):
    with pytest.raises(click.UsageError, match=message.replace("[", r"\[")):
        _params(value)


def test_text_search_runs_with_the_issue_spelling(tmp_path: Path):
    project = copy_project(tmp_path)
    trained = kedro(project, "run", "--pipelines", "full", "--env", "e2e")
    assert trained.returncode == 0, output(trained)[-3000:]
    result = kedro(project, "run", "--pipelines", "text_search", "--env", "e2e",
                   "--params", f"{QUERIES},text_search.top_k=2")
    assert result.returncode == 0, output(result)[-3000:]
    [csv] = (project / "data" / "08_reporting" / "text_search" / "results.csv").glob("*/*.csv")
    results = pd.read_csv(csv)
    assert results["query"].tolist() == ["a woman in a red top"] * 2 + ["a man with a backpack"] * 2
    assert results["rank"].tolist() == [1, 2, 1, 2]
