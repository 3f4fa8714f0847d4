"""Which of ``conf/logging.yml``'s two console handlers prints: Kedro's Rich handler on a
terminal, one plain line per record anywhere else (a log file, a pipe, CI).

Why: Rich lays a record out for a terminal; without one it assumes 80 columns and wraps every
long record over 2-6 lines, which breaks ``grep`` and log collectors. Kedro lets its logging file
name only classes of ``logging`` and ``kedro.logging`` (a project handler would need
``KEDRO_LOGGING_MODULE_ALLOWLIST`` set in every shell), so the YAML reads these levels through
dictConfig's ``ext://`` instead: the handler that must stay quiet gets a level above CRITICAL.
"""

from __future__ import annotations

import logging
import sys

from clip_reid.project import warning_filters

# Kedro applies conf/logging.yml (and so imports this module) before anything else of the
# project, also in `kedro viz`'s server process, which imports kedro-viz's API (and warns)
# before it reads settings.py: the one place early enough to silence the known warnings.
warning_filters.install()

SILENT = logging.CRITICAL + 10  # above every level: a handler at this level emits nothing
ON_TERMINAL = sys.stdout.isatty()  # both handlers write to stdout, where Kedro's Rich one does
RICH_LEVEL = logging.NOTSET if ON_TERMINAL else SILENT
PLAIN_LEVEL = SILENT if ON_TERMINAL else logging.NOTSET
