"""The project's ``kedro run``: Kedro's own command, with short answers to expected errors.

Kedro loads ``<package>.cli`` and lets its commands override the built-in ones (also for
``python -m clip_reid``). This ``run`` takes every option of Kedro's ``run`` unchanged and adds
``--verbose``. When a run fails for a reason the user can fix (an earlier stage has not run yet,
a ``--load-versions`` version that does not exist, one of the project's own errors), it prints
two lines saying what happened and what to do, instead of a few hundred lines of traceback.
The traceback is still there: with ``--verbose``, or at DEBUG level of the ``clip_reid.cli``
logger in a logging configuration given by ``KEDRO_LOGGING_CONFIG``.
"""

from __future__ import annotations

import logging
from typing import Any

import click
from kedro.framework.cli.project import run as kedro_run
from kedro.framework.project import pipelines

from clip_reid.redaction import redact_text
from clip_reid.run_errors import explain, producers

logger = logging.getLogger(__name__)


class _RunWithShortErrors(click.Command):
    """Kedro's ``run`` whose expected failures end in a short message and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        verbose = ctx.params.pop("verbose", False)
        try:
            return super().invoke(ctx)
        except Exception as error:
            if verbose:
                raise
            message = explain(error, _producers(), load_versions=ctx.params.get("load_versions"))
            if message is None:
                raise
            logger.debug("Traceback of the error below:", exc_info=error)
            raise click.ClickException(f"{redact_text(message)} (--verbose: traceback)") from None


def _producers() -> dict[str, str]:
    """Which stage writes each dataset; empty if the registry itself is what failed to load."""
    try:
        return producers(pipelines)
    except Exception:  # a hint must never replace the error it explains
        return {}


_verbose = click.Option(["--verbose", "-v"], is_flag=True,
                        help="On error, show the full traceback instead of a short message.")

run = _RunWithShortErrors(
    name="run",
    callback=kedro_run.callback,
    params=[*kedro_run.params, _verbose],
    help=kedro_run.help,
    short_help=kedro_run.short_help,
)


@click.group(name="clip_reid")
def cli() -> None:
    """Project commands (they take precedence over Kedro's and plugins' of the same name)."""


cli.add_command(run)
