"""A training stage's work folder: claimed with a marker, refused when it holds files the project
did not write, and cleaned on finishing of only what the stage wrote.

The marker (``.clip_reid_work_dir``) records whether the stage created the folder or adopted an
empty one of the user's; a folder that still holds other files when the stage finishes (a
checkpoint moved aside, a note of the user's) keeps its marker, so the next run may use it
again instead of refusing it as foreign. A damaged checkpoint moved aside gets a name no other
file can take, so two in the same second do not overwrite each other.
"""

from __future__ import annotations

import logging
import shutil
from datetime import datetime
from pathlib import Path

logger = logging.getLogger(__name__)

RESUME_FILE = "last.ckpt"
FINGERPRINT_FILE = "settings.json"
PROGRESS_FILE = "progress.json"
RUN_FILE = "mlflow_run.json"  # the MLflow run that trained into the folder: a resume links to it
MARKER_FILE = ".clip_reid_work_dir"  # written into every work folder the project uses
RAY_RUN_DIR = "ray_train"  # Ray Train's checkpoints of a `trainer.engine: ray` stage
OWN_FILES = (RESUME_FILE, f"{RESUME_FILE}.partial", FINGERPRINT_FILE, PROGRESS_FILE, RUN_FILE)
ASIDE_INFIX = ".unreadable-"  # last.ckpt.unreadable-<time>: a damaged checkpoint moved aside
CREATED, ADOPTED = "created", "adopted"  # the marker's content: may the stage remove the folder?
_LISTED = 5  # entries named in a refusal


class WorkDirError(RuntimeError):
    """A stage's work folder holds files the project did not write."""


def check_work_dir(work_dir: Path, key: str = "work_dir") -> None:
    """Refuse a file, or a non-empty folder without the project's marker holding anything but
    checkpoints the project moved aside (it may hold anyone's files). ``key`` is the parameter
    that names the folder, for the message."""
    if work_dir.exists() and not work_dir.is_dir():
        raise WorkDirError(f"work_dir {work_dir} is a file, not a folder: set {key} to a new "
                           f"folder, e.g. --params {key}={_free_sibling(work_dir)}.")
    if not work_dir.is_dir() or (work_dir / MARKER_FILE).is_file():
        return
    foreign = sorted(path.name for path in work_dir.iterdir() if not is_moved_aside(path.name))
    if foreign:
        shown = ", ".join(foreign[:_LISTED]) + (f" and {len(foreign) - _LISTED} more"
                                                if len(foreign) > _LISTED else "")
        raise WorkDirError(
            f"work_dir {work_dir} is not empty and was not created by clip-reid (no "
            f"{MARKER_FILE} in it): it holds {shown}. A stage writes and later deletes "
            f"{', '.join((*OWN_FILES, RAY_RUN_DIR))} there, so it only uses a new or empty "
            f"folder: move those files out of {work_dir}, or set {key} to a new folder, e.g. "
            f"--params {key}={_free_sibling(work_dir)}."
        )


def is_moved_aside(name: str) -> bool:
    """Whether ``name`` is a damaged checkpoint the project moved aside."""
    return name.startswith(f"{RESUME_FILE}{ASIDE_INFIX}")


def _free_sibling(work_dir: Path) -> Path:
    number = 2
    while work_dir.with_name(f"{work_dir.name}-{number}").exists():
        number += 1
    return work_dir.with_name(f"{work_dir.name}-{number}")


def claim(work_dir: Path, key: str = "work_dir") -> None:
    """Check ``work_dir``, create it if needed and mark it as the project's (recording whether
    it was created or an empty folder adopted)."""
    check_work_dir(work_dir, key)
    created = not work_dir.exists()
    work_dir.mkdir(parents=True, exist_ok=True)
    marker = work_dir / MARKER_FILE
    if not marker.is_file():
        marker.write_text(CREATED if created else ADOPTED)


def remove_own_files(work_dir: Path) -> None:
    """Delete the files a stage writes (never anything else)."""
    for name in OWN_FILES:
        (work_dir / name).unlink(missing_ok=True)
    shutil.rmtree(work_dir / RAY_RUN_DIR, ignore_errors=True)


def finish(work_dir: Path) -> None:
    """A finished stage's resume state is obsolete: remove the files it wrote; then the folder
    if it created it and nothing else is left, the marker only if it adopted it. A folder still
    holding other files keeps its marker, so the next run may use it."""
    remove_own_files(work_dir)
    marker = work_dir / MARKER_FILE
    left = sorted(path.name for path in work_dir.iterdir() if path.name != MARKER_FILE)
    if left:
        aside = [name for name in left if is_moved_aside(name)]
        advice = (f" {', '.join(aside)}: checkpoint(s) that could not be read, moved aside; "
                  "delete them once you no longer need them." if aside else "")
        logger.info("Kept %s: it holds other files (%s); it stays marked as this project's work "
                    "folder, so the next run uses it and leaves them alone.%s", work_dir,
                    ", ".join(left), advice)
        return
    created = not marker.is_file() or marker.read_text().strip() != ADOPTED
    marker.unlink(missing_ok=True)
    if created:
        work_dir.rmdir()


def move_aside(checkpoint: Path) -> Path:
    """Rename ``checkpoint`` to ``<name>.unreadable-<time>`` (microseconds, plus a counter if
    taken), never over an existing file."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    aside = checkpoint.with_name(f"{checkpoint.name}{ASIDE_INFIX}{stamp}")
    number = 1
    while aside.exists():
        number += 1
        aside = checkpoint.with_name(f"{checkpoint.name}{ASIDE_INFIX}{stamp}-{number}")
    checkpoint.rename(aside)
    return aside
