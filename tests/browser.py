"""Which Chromium the browser tests drive, found the ways Playwright users expect, so the
README's test command runs wherever one is installed (only .ci/run installs Debian's)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ENV = "CLIP_REID_CHROMIUM"  # an explicit browser executable
SYSTEM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")  # Debian, Ubuntu
ON_PATH = ("chromium", "chromium-browser", "google-chrome")
MISSING = (
    "No Chromium for the search-page test. Install one of: Playwright's own build "
    "(`python -m playwright install chromium`), Debian's (`apt-get install chromium`, what "
    f".ci/run does), or point {ENV} at a Chromium or Chrome executable."
)


def chromium_executable(playwright_executable: str) -> str | None:
    """The executable to launch: ``$CLIP_REID_CHROMIUM``; else None when Playwright's own build
    (``playwright_executable``, ``playwright.chromium.executable_path``) is installed; else a
    system Chromium. Raises FileNotFoundError saying how to get one."""
    if given := os.environ.get(ENV):
        if not Path(given).is_file():
            raise FileNotFoundError(f"{ENV}={given} is not a file. {MISSING}")
        return given
    if Path(playwright_executable).is_file():
        return None
    found = [*SYSTEM, *(shutil.which(name) for name in ON_PATH)]
    for candidate in found:
        if candidate and Path(candidate).is_file():
            return candidate
    raise FileNotFoundError(MISSING)
