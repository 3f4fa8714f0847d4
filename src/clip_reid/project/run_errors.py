"""Turn the errors a user meets first into a short message saying what to do.

A run that needs an earlier stage's output before that stage has run, a ``--load-versions``
version that does not exist, and the project's own errors (``DatasetLayoutError``,
``WeightsError``, ...) are expected situations, not bugs: the user needs one line naming the
cause and one naming the fix, not the frames of Kedro's runner. Anything else is unexpected and
keeps its traceback. Used by the project's ``kedro run`` (``clip_reid.project.cli``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from kedro.io.core import DatasetError, VersionNotFoundError
from kedro.pipeline import Pipeline

from clip_reid.project.kedro_private import (
    CATALOG_ERROR_DATASET,
    DATASET_REPR_FILEPATH,
    LOAD_FAILED,
    UNKNOWN_PIPELINE,
)

_OWN_PACKAGE = __name__.split(".")[0]
# Registered pipelines that are not a stage of their own: never suggested as "the" producer.
_AGGREGATES = frozenset({"__default__"})


def producers(pipelines: Mapping[str, Pipeline]) -> dict[str, str]:
    """Dataset name → the smallest registered pipeline writing it (its stage, not ``full``).

    Derived from the registry, so a new pipeline (e.g. text search) is covered without a list
    to maintain; ties go to the alphabetically first name, for a stable message.
    """
    found: dict[str, str] = {}
    ranked = sorted(
        (item for item in pipelines.items() if item[0] not in _AGGREGATES),
        key=lambda item: (len(item[1].nodes), item[0]),
    )
    for name, pipeline in ranked:
        for dataset in pipeline.all_outputs():
            found.setdefault(dataset, name)
    return found


def explain(
    error: BaseException,
    producers_by_dataset: Mapping[str, str],
    load_versions: Mapping[str, str] | None = None,
    full_pipeline: str = "full",
) -> str | None:
    """A short message for an expected error, or ``None`` when the traceback is what helps."""
    chain = list(_causes(error))
    own = next((exc for exc in chain if _is_own(exc)), None)
    dataset = next((m["name"] for exc in chain if isinstance(exc, DatasetError)
                    and (m := CATALOG_ERROR_DATASET.match(str(exc)))), None)
    if isinstance(own, MissingInputError):
        return str(own)
    if own is not None:
        where = f" in dataset `{dataset}`" if dataset else ""
        return f"{type(own).__name__}{where}: {own}"
    if isinstance(error, ValueError) and str(error).startswith(UNKNOWN_PIPELINE):
        return str(error).strip()  # Kedro's message already lists the close matches
    if dataset is None:
        return None
    requested = (load_versions or {}).get(dataset)
    loading = any(str(exc).startswith(LOAD_FAILED) for exc in chain)
    missing_file = next((exc for exc in chain if isinstance(exc, FileNotFoundError)
                         and loading), None)
    if requested and (missing_file is not None or _has(chain, VersionNotFoundError)):
        return _missing_version(dataset, requested, chain, missing_file)
    if _has(chain, VersionNotFoundError) or missing_file is not None:
        return _missing_dataset(dataset, _dataset_path(chain), producers_by_dataset,
                                full_pipeline)
    return None


class MissingInputError(RuntimeError):
    """A pipeline reads another stage's output that does not exist yet."""


def missing_input(
    pipeline: Pipeline,
    exists: Callable[[str], bool],
    describe: Callable[[str], str],
    producers_by_dataset: Mapping[str, str],
    full_pipeline: str = "full",
) -> str | None:
    """The message for the first input (in run order) that another stage writes and that does
    not exist yet, or None. Checked when a run starts, so such a run fails before it opens an
    MLflow run and without Kedro's "repeat the previous command" advice, which cannot help.
    ``describe`` gives a dataset's repr (where its file path is)."""
    needed = pipeline.inputs()
    for node in pipeline.nodes:  # topologically sorted: the first read first
        for name in node.inputs:
            if name in needed and name in producers_by_dataset and not exists(name):
                match = DATASET_REPR_FILEPATH.search(describe(name))
                path = _shown(Path(match["path"])) if match else None
                return _missing_dataset(name, path, producers_by_dataset, full_pipeline)
    return None


def _missing_dataset(
    dataset: str,
    path: str | None,
    producers_by_dataset: Mapping[str, str],
    full_pipeline: str,
) -> str:
    where = f" (nothing at {path})" if path else ""
    stage = producers_by_dataset.get(dataset)
    made_by = f"; the `{stage}` stage makes it" if stage else ""
    return (
        f"`{dataset}` does not exist yet{where}{made_by}.\n"
        f"Make it with `kedro run --pipelines {full_pipeline}`, or point `{dataset}` at an "
        "existing file in conf/local/catalog.yml."
    )


def _missing_version(
    dataset: str, requested: str, chain: list[BaseException], missing: OSError | None
) -> str:
    versions_dir = _versions_dir(chain, missing)
    available = _versions(versions_dir) if versions_dir else []
    listed = ", ".join(available[:5]) + (" ..." if len(available) > 5 else "")
    found = f"Available (newest first): {listed}" if available else "No version exists yet"
    where = f" in {_shown(versions_dir)}" if versions_dir else ""
    return (
        f"`{dataset}` has no version {requested!r}{where} (from --load-versions).\n"
        f"{found}; leave `{dataset}` out of --load-versions to use the newest."
    )


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error and what caused it, outermost first (explicit cause, else implicit context)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_own(error: BaseException) -> bool:
    return type(error).__module__.split(".")[0] == _OWN_PACKAGE


def _has(chain: list[BaseException], kind: type[BaseException]) -> bool:
    return any(isinstance(exc, kind) for exc in chain)


def _dataset_path(chain: list[BaseException]) -> str | None:
    """The dataset's file as a user reads it (relative to the project when inside it)."""
    for exc in chain:
        if match := DATASET_REPR_FILEPATH.search(str(exc)):
            return _shown(Path(match["path"]))
        if isinstance(exc, FileNotFoundError) and exc.filename:
            return _shown(Path(exc.filename))
    return None


def _versions_dir(chain: list[BaseException], missing: OSError | None) -> Path | None:
    """A versioned dataset lives at ``<filepath>/<version>/<name>``: the folder of versions."""
    if missing is not None and missing.filename:
        return Path(missing.filename).parent.parent
    path = next((m["path"] for exc in chain if (m := DATASET_REPR_FILEPATH.search(str(exc)))), None)
    return Path(path) if path else None


def _versions(versions_dir: Path) -> list[str]:
    if not versions_dir.is_dir():
        return []
    return sorted((child.name for child in versions_dir.iterdir() if child.is_dir()),
                  reverse=True)


def _shown(path: Path) -> str:
    """Relative to the working directory (the project) when inside it, else as given."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
