"""The Kedro project the search page serves: its merged parameters and its catalog, for one
environment, read the way `kedro run --env <env>` reads them (so a recipe's model and parameters
are served, and a catalog entry moved in conf/ moves the page with it)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kedro.framework.hooks import _create_hook_manager  # exported: kedro.framework.hooks.__all__
from kedro.framework.project import settings
from kedro.framework.startup import bootstrap_project
from kedro.io import DataCatalog


class NotAProjectError(RuntimeError):
    """The page was started outside the project folder."""


@dataclass(frozen=True)
class Project:
    """One environment of the project: parameters, catalog and the catalog's configuration."""

    path: Path
    env: str | None  # None: Kedro's default resolution (base + local)
    params: dict[str, Any]
    catalog: Any  # Kedro's CatalogProtocol
    catalog_conf: dict[str, Any]  # the merged catalog.yml entries, for messages and overrides

    def filepath(self, name: str) -> str:
        """Where catalog entry ``name`` is kept, as configured (for messages)."""
        return str(self.catalog_conf.get(name, {}).get("filepath", "(not a file)"))

    def load_file(self, name: str, path: Path) -> Any:
        """The file ``path`` read as catalog entry ``name`` reads its versions (same dataset
        type and arguments), so an override gives the object the catalog would."""
        entry = {**self.catalog_conf[name], "filepath": str(path), "versioned": False}
        return DataCatalog.from_config({name: entry}).load(name)

    def command(self, pipeline: str) -> str:
        """The `kedro run` that writes what this environment lacks."""
        env = f" --env {self.env}" if self.env else ""
        return f"kedro run{env} --pipelines {pipeline}"


def open_project(path: Path, env: str | None, runtime_params: dict[str, Any]) -> Project:
    """Bootstrap the Kedro project at ``path`` and read environment ``env`` (None: KEDRO_ENV,
    else Kedro's default) with ``runtime_params`` as `--params` gives them, as KedroSession
    does, but with none of the project's hooks and no pipeline's parameter validation: the page
    runs no pipeline, so it loads none, opens no MLflow run and writes nothing (its own settings
    are checked by the caller)."""
    if not (path / "pyproject.toml").is_file():
        raise NotAProjectError(
            f"{path} is not the clip-reid project folder (no pyproject.toml): start "
            "clip-reid-app in the folder where you run `kedro run`.")
    metadata = bootstrap_project(path)
    env = env or os.environ.get("KEDRO_ENV")
    loader = settings.CONFIG_LOADER_CLASS(conf_source=str(path / settings.CONF_SOURCE), env=env,
                                          runtime_params=runtime_params,
                                          **settings.CONFIG_LOADER_ARGS)
    context = settings.CONTEXT_CLASS(project_path=path, config_loader=loader, env=env,
                                     package_name=metadata.package_name,
                                     hook_manager=_create_hook_manager(),
                                     runtime_params=runtime_params, pipelines_to_validate=[])
    return Project(path, env, dict(context.params), context.catalog, dict(loader["catalog"]))
