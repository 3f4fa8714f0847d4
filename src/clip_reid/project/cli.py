"""The project's ``kedro run``: Kedro's own command, with short answers to expected errors.

Kedro loads ``<package>.cli`` and lets its commands override the built-in ones (also for
``python -m clip_reid``). This ``run`` takes every option of Kedro's ``run`` unchanged and adds
``--verbose``. When a run fails for a reason the user can fix (an earlier stage has not run yet,
a ``--load-versions`` version that does not exist, one of the project's own errors), it prints
two lines saying what happened and what to do, instead of a few hundred lines of traceback.
The traceback is still there: with ``--verbose``, or at DEBUG level of the ``clip_reid.project.cli``
logger in a logging configuration given by ``KEDRO_LOGGING_CONFIG``.

``--params`` is read as Kedro reads it, except that a comma inside brackets or quotes belongs to
the value, and a value that is not valid YAML gets a usage message naming it, not a traceback.
``--params "text_search.queries=[a woman in a red top, a man with a backpack],text_search.top_k=5"``
gives a list of two sentences (Kedro 1.7 splits at every comma and rejects ``a man with a
backpack]``).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click
import yaml
from kedro.framework.cli.project import run as kedro_run
from kedro.framework.project import pipelines
from omegaconf import OmegaConf

from clip_reid.project.kedro_private import kedro_split_params
from clip_reid.project.redaction import redact_text
from clip_reid.project.run_errors import explain, producers

logger = logging.getLogger(__name__)


class _RunWithShortErrors(click.Command):
    """Kedro's ``run`` whose expected failures end in a short message and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        verbose = ctx.params.pop("verbose", False)
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            _end_interrupted_run()
            click.echo(f"Interrupted (Ctrl-C). {RESUME_ADVICE}", err=True)
            ctx.exit(130)  # the shell's code for a SIGINT exit
        except Exception as error:
            if verbose:
                raise
            message = explain(error, _producers(), load_versions=ctx.params.get("load_versions"))
            if message is None:
                raise
            logger.debug("Traceback of the error below:", exc_info=error)
            raise click.ClickException(f"{redact_text(message)} (--verbose: traceback)") from None


RESUME_ADVICE = ("Run the same command again: a training stage resumes from its last finished "
                 "epoch, and --only-missing-outputs skips the stages that finished.")


def _end_interrupted_run() -> None:
    """Ctrl-C outside a training stage skips Kedro's error hooks: end the MLflow run KILLED
    (not FINISHED, as mlflow's exit handler would)."""
    if "mlflow" not in sys.modules:
        return
    import mlflow

    while run := mlflow.active_run():
        mlflow.end_run("KILLED")
        logger.info("MLflow run %s marked KILLED: it was interrupted.", run.info.run_id)


def _producers() -> dict[str, str]:
    """Which stage writes each dataset; empty if the registry itself is what failed to load."""
    try:
        return producers(pipelines)
    except Exception:  # a hint must never replace the error it explains
        return {}


_PAIRS = {"]": "[", "}": "{"}
_VALUE_STARTS = "=[{,:"  # a quote right after one of these (spaces aside) opens a YAML string


def _top_level_items(value: str) -> list[str] | None:
    """``value`` split at the commas outside ``[...]``, ``{...}`` and quoted strings; None if
    they don't pair. A quote opens a string only where a YAML value starts, so the apostrophe
    of ``it's`` is a letter."""
    items, open_brackets, start = [], [], 0
    quote, previous = "", "="
    for position, character in enumerate(value):
        if quote:
            if character == quote and value[position - 1] != "\\":
                quote = ""
        elif character in "\"'" and previous in _VALUE_STARTS:
            quote = character
        elif character in "[{":
            open_brackets.append(character)
        elif character in _PAIRS:
            if not open_brackets or open_brackets.pop() != _PAIRS[character]:
                return None
        elif character == "," and not open_brackets:
            items.append(value[start:position])
            start = position + 1
        if not character.isspace():
            previous = character
    return None if open_brackets or quote else [*items, value[start:]]


def _split_params(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Kedro's ``--params`` parsing (``key=value`` items separated by commas, dotted keys for
    nesting, values read as YAML), except that the commas inside ``[...]`` or ``{...}`` are part
    of the value: ``queries=[a woman, a man]`` is a list of two strings. Brackets that do not
    pair up leave the whole value to Kedro's own parsing, so nothing Kedro accepts changes."""
    if isinstance(value, dict):  # from a --config file
        return value
    items = _top_level_items(value)
    if items is None:
        try:
            return kedro_split_params(ctx, param, value)
        except yaml.YAMLError as error:
            ctx.fail(f"Invalid format of `{param.name}` option: {value!r} is not valid YAML "
                     f"({' '.join(str(error).split())}). Check its brackets and quotes.")
    dot_list = []
    for item in (item.strip() for item in items):
        if not item:
            continue
        key, equals, given = item.partition("=")
        if not equals:
            ctx.fail(f"Invalid format of `{param.name}` option: Item `{item}` must contain a key "
                     "and a value separated by `=`.")
        if not key.strip():
            ctx.fail(f"Invalid format of `{param.name}` option: Parameter key cannot be an empty "
                     "string.")
        dot_list.append(f"{key.strip()}={given}")
    for item in dot_list:  # one at a time, to name the item a YAML error is in
        try:
            OmegaConf.from_dotlist([item])
        except Exception as error:  # noqa: BLE001 - YAML and OmegaConf raise many types
            key, _, given = item.partition("=")
            problem = " ".join(str(error).split())
            ctx.fail(f"Invalid format of `{param.name}` option: the value of `{key}` "
                     f"({given!r}) is not valid YAML ({problem}). Quote it to pass it as text, "
                     f"e.g. {key}='{given}'.")
    return OmegaConf.to_container(OmegaConf.from_dotlist(dot_list))


def _with_list_params(option: click.Parameter) -> click.Parameter:
    """Kedro's ``--params`` option with ``_split_params``; any other option unchanged."""
    if option.name != "params":
        return option
    return click.Option(
        option.opts, type=click.UNPROCESSED, default="", callback=_split_params,
        help=f"{option.help}\nA comma inside [...] or {{...}} belongs to the value: "
             "queries=[a woman in a red top, a man with a backpack] is a list.",
    )


_verbose = click.Option(["--verbose", "-v"], is_flag=True,
                        help="On error, show the full traceback instead of a short message.")

run = _RunWithShortErrors(
    name="run",
    callback=kedro_run.callback,
    params=[*map(_with_list_params, kedro_run.params), _verbose],
    help=kedro_run.help,
    short_help=kedro_run.short_help,
)


@click.group(name="clip_reid")
def cli() -> None:
    """Project commands (they take precedence over Kedro's and plugins' of the same name)."""


cli.add_command(run)
