"""The Kedro layer stays thin: nodes are catalog inputs -> settings -> one library call
-> outputs, parameters are read only through strict settings, and the library never imports it."""

import ast
import inspect
from pathlib import Path

import pytest

import clip_reid
import clip_reid.pipelines
from clip_reid.pipeline_registry import register_pipelines

MAX_NODE_LINES = 25
PACKAGE = Path(clip_reid.__file__).parent
LIBRARY = ("data", "modeling", "metrics", "inference", "io", "app")
KEDRO_LAYER = ("clip_reid.pipelines", "clip_reid.pipeline_registry", "clip_reid.project")


def _node_functions() -> dict[str, object]:
    """Every node function of every registered pipeline, with the served model's inference
    pipeline that `full` carries."""
    functions = {}
    for pipeline in register_pipelines().values():
        parts = [pipeline, getattr(pipeline, "inference", None)]
        for node in (node for part in parts if part is not None for node in part.nodes):
            functions[f"{node.func.__module__}.{node.func.__qualname__}"] = node.func
    return functions


NODE_FUNCTIONS = _node_functions()


def test_every_pipeline_is_walked():
    walked = {function.__module__.split(".")[2] for function in NODE_FUNCTIONS.values()}
    stages = {path.name for path in (PACKAGE / "pipelines").iterdir()
              if (path / "pipeline.py").is_file()}
    assert walked == stages
    assert "clip_reid.pipelines.inference.nodes.identify_queries_served" in NODE_FUNCTIONS


@pytest.mark.parametrize("name", sorted(NODE_FUNCTIONS))
def test_node_functions_are_short(name):
    lines = len(inspect.getsource(NODE_FUNCTIONS[name]).splitlines())
    assert lines <= MAX_NODE_LINES, (
        f"{name} has {lines} lines (docstring included): move its logic into the library so "
        "the node only reads settings and calls it.")


def _python_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def test_pipelines_read_no_parameter_with_a_silent_default():
    """``x.get(key, default)`` (or ``x.get(key)``, default None) hides a missing or misspelt
    key; settings classes and typed library accessors reject it."""
    found = []
    for path in _python_files(PACKAGE / "pipelines"):
        for call in ast.walk(ast.parse(path.read_text())):
            if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                    and call.func.attr == "get"):
                found.append(f"{path.relative_to(PACKAGE)}:{call.lineno}")
    assert found == []


def test_the_library_never_imports_the_kedro_layer():
    found = []
    for folder in LIBRARY:
        for path in _python_files(PACKAGE / folder):
            for statement in ast.walk(ast.parse(path.read_text())):
                if isinstance(statement, ast.ImportFrom) and statement.module:
                    names = [f"{statement.module}.{alias.name}" for alias in statement.names]
                elif isinstance(statement, ast.Import):
                    names = [alias.name for alias in statement.names]
                else:
                    continue
                if any(name.startswith(KEDRO_LAYER) for name in names):
                    found.append(f"{path.relative_to(PACKAGE)}:{statement.lineno}")
    assert found == []


def test_pipelines_holds_only_pipeline_folders():
    """Project glue lives in clip_reid.project: here, one folder per pipeline (and __init__)."""
    root = Path(clip_reid.pipelines.__file__).parent
    entries = {path.name for path in root.iterdir() if path.name != "__pycache__"}
    folders = {name for name in entries if (root / name / "pipeline.py").is_file()}
    assert entries - folders == {"__init__.py"}
    assert {"data_ingestion", "captions", "prompt_learning", "encoder_training",
            "evaluation", "inference"} <= folders
