"""Kedro looks in ``<package>.cli`` for the project's commands: the ``cli`` group for ``kedro``,
and ``run`` for ``python -m clip_reid``. Both are written in :mod:`clip_reid.project.cli` with the
rest of the Kedro glue."""

from clip_reid.project.cli import cli, run

__all__ = ["cli", "run"]
