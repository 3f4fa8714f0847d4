"""A demo run's console carries only warnings a user can act on."""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import lightning.pytorch
import pytest
from kedro_project import copy_project, kedro, output, warning_records

from clip_reid.modeling.clip_factory import ClipSpec, load_clip
from clip_reid.project import warning_filters

# Warnings that may remain, each because it tells the user to do something.
ACTIONABLE = {
    # Kedro 1.7 still runs `--pipeline X` (the design card's spelling) and says once to use
    # `--pipelines X`; the README explains both.
    "--pipeline is deprecated": re.compile(r"Option '--pipeline' is deprecated"),
}

# One real message per silenced warning, as the library prints it today.
EXAMPLES = {
    r"register_new_resolver\(\) is deprecated": "register_new_resolver() is deprecated and will "
    "be removed in a future release.\nUse register_resolver() instead.",
    r"(\x1b\[[\d;]*m)?Add type hints to the `predict` method": "\x1b[33mAdd type hints to the "
    "`predict` method to enable data validation and automatic signature inference during model "
    "logging.\x1b[0m",
    r"(\x1b\[[\d;]*m)?An input example was not provided when logging the model": "\x1b[1;33mAn "
    "input example was not provided when logging the model. To ensure the model signature "
    "functions correctly, specify the `input_example` parameter.\x1b[0m",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated": "`isinstance(treespec, LeafSpec)` is "
    "deprecated, use `isinstance(treespec, TreeSpec) and treespec.is_leaf()` instead.",
    r"`torch\.jit\.load` is deprecated": "`torch.jit.load` is deprecated. Please switch to "
    "`torch.export`.",
    r"Support for class-based `config` is deprecated": "Support for class-based `config` is "
    "deprecated, use ConfigDict instead. Deprecated in Pydantic V2.0 to be removed in V3.0.",
    r"The ``noload`` loader strategy is deprecated": "The ``noload`` loader strategy is "
    "deprecated and will be removed in a future release. (deprecated since: 2.1)",
    r"`(use_push_based_shuffle|use_polars|use_arrow_tensor_v2)` is deprecated":
    "`use_polars` is deprecated, please configure `use_polars_sort`  instead.",
    r"ORJSONResponse is deprecated": "ORJSONResponse is deprecated, FastAPI now serializes data "
    "directly to JSON bytes via Pydantic when a return type or response model is set",
}

def unlisted(records: list[str]) -> list[str]:
    return [r for r in records if not any(p.search(r) for p in ACTIONABLE.values())]


def _example_module(pattern: str) -> str:
    """A module name the ``module`` regex matches (its first alternative, unescaped)."""
    return pattern.strip("()").split("|")[0].replace("\\.", ".")


@pytest.mark.parametrize("known", warning_filters.KNOWN_WARNINGS, ids=lambda k: k.upstream[:30])
def test_known_warnings_are_silenced_only_from_their_module(known):
    message = EXAMPLES[known.message]
    module = _example_module(known.module)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warning_filters.install()
        warnings.warn_explicit(message, known.category, "x.py", 1, module=module)
        warnings.warn_explicit(message, known.category, "x.py", 1, module="clip_reid.nodes")
        warnings.warn_explicit("something else", known.category, "x.py", 1, module=module)
    assert [(w.message.args[0], w.filename) for w in caught] == [
        (message, "x.py"), ("something else", "x.py")]


def test_known_warnings_are_dropped_where_logging_captures_them():
    """mlflow's own `simplefilter("once")` overrides warnings filters; the log filter holds."""
    warning_filters.install()
    captured = logging.getLogger("py.warnings")
    mlflow_text = warnings.formatwarning(
        EXAMPLES[r"(\x1b\[[\d;]*m)?Add type hints to the `predict` method"], UserWarning,
        "/site-packages/mlflow/pyfunc/utils/data_validation.py", 187)
    ours = warnings.formatwarning("Add type hints to the `predict` method", UserWarning,
                                  "/src/clip_reid/project/served_model.py", 3)

    def kept(text: str) -> bool:
        record = captured.makeRecord("py.warnings", logging.WARNING, "x", 1, "%s", (text,), None)
        return captured.filter(record)

    example_text = warnings.formatwarning(
        EXAMPLES[r"(\x1b\[[\d;]*m)?An input example was not provided when logging the model"],
        UserWarning, "/site-packages/mlflow/pyfunc/__init__.py", 3344)
    assert not kept(mlflow_text)
    assert not kept(example_text)
    assert kept(ours)
    warning_filters.install()  # idempotent
    assert sum(isinstance(f, warning_filters._DropKnownWarnings) for f in captured.filters) == 1


def test_known_log_records_are_dropped_from_their_logger_only():
    warning_filters.install()
    text = ("Passing a Python object as `python_model` causes it to be serialized using "
            "CloudPickle, it requires exercising caution")

    def kept(logger_name: str, message: str) -> bool:
        logger = logging.getLogger(logger_name)
        return logger.filter(logger.makeRecord(logger_name, logging.WARNING, "x", 1, message,
                                               (), None))

    assert not kept("mlflow.pyfunc", text)
    assert not kept("kedro_mlflow.mlflow.kedro_pipeline_model", "The parameter 'inference' is "
                    "persisted (as pickle) at the following location: f'{artifact_path}'")
    assert kept("mlflow.pyfunc", "Something else went wrong")
    assert kept("clip_reid.pipelines", text)


@pytest.mark.parametrize("last_imported", ["lightning.pytorch", "pytorch_lightning"])
def test_lightning_logger_advert_is_dropped_at_its_source(caplog, monkeypatch, last_imported):
    """Whichever Lightning package names the shared rank-zero logger (the last one imported)."""
    from lightning_utilities.core import rank_zero

    monkeypatch.setattr(rank_zero, "log", logging.getLogger(f"{last_imported}.utilities.rank_zero"))
    warning_filters.install()
    with caplog.at_level(logging.INFO):
        lightning.pytorch.Trainer(logger=False, enable_progress_bar=False,
                                  enable_checkpointing=False, accelerator="cpu")
    assert "GPU available" in caplog.text  # Lightning's other INFO lines still reach the log
    assert "litlogger" not in caplog.text


def test_building_clip_does_not_claim_no_weights_were_loaded(caplog):
    with caplog.at_level(logging.WARNING):
        load_clip(ClipSpec(arch="tiny-rn", weights="random"))
    assert not [r for r in caplog.records if "No pretrained weights" in r.getMessage()]


def test_warning_records_parser_reads_plain_logs():
    log = (
        "2026-12-04 04:05:07 INFO kedro.framework.project: Using 'conf/logging.yml' as logging\n"
        "2026-12-04 04:05:30 WARNING py.warnings: /x/kedro/framework/cli/project.py:281: "
        "KedroDeprecationWarning: Option '--pipeline' is deprecated.\n"
        "  warnings.warn(\n"
        "2026-12-04 04:05:31 WARNING kedro.io.data_catalog: Replacing dataset 'dataset_metrics'\n"
        "Test Results - Rank-1: 46.07%\n"
        "2026/12/04 04:45:54 WARNING mlflow.pyfunc: Passing a Python object as `python_model`\n"
        "2026/12/04 04:45:54 INFO mlflow.store.db.utils: Creating initial MLflow database\n"
    )
    records = warning_records(log)
    assert len(records) == 3
    assert records[0].endswith("deprecated. warnings.warn(")  # its indented source line joined
    assert unlisted(records) == [
        "2026-12-04 04:05:31 WARNING kedro.io.data_catalog: Replacing dataset 'dataset_metrics'",
        "2026/12/04 04:45:54 WARNING mlflow.pyfunc: Passing a Python object as `python_model`"]


def test_demo_ingestion_prints_no_unlisted_warning(tmp_path: Path):
    """The README's spelling, on a small synthetic demo: no warning at all (the deprecated
    `--pipeline` would add Kedro's notice, the one actionable warning)."""
    project = copy_project(tmp_path)
    result = kedro(project, "run", "--pipelines", "data_ingestion", "--env", "e2e")
    log = output(result)
    assert result.returncode == 0, log[-3000:]
    records = warning_records(log)
    assert unlisted(records) == [], "\n".join(unlisted(records))
    assert records == []
    stray = [line for line in log.splitlines() if re.search(r"\w+Warning: ", line)
             and not any(line.strip() in record for record in records)]
    assert stray == []
