"""Hide credentials embedded in URLs before a value is logged or recorded.

A dataset archive URL may carry credentials (``https://user:password@host/...``,
``...?token=...``, presigned ``X-Amz-Signature=...``). Parameters end up in MLflow, in log lines
and in error messages, all readable by more people than the credentials are meant for; every
place that records a user-supplied value passes it through ``redact`` first. No kedro imports, so
library code (e.g. ``data/download.py`` messages) can use it too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "***"

# scheme://userinfo@  (userinfo = user, user:password or a bare token)
_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<userinfo>[^/?#@\s]+)@", re.I)
# ?name=value / &name=value for query parameters that carry secrets
_SECRET_QUERY = re.compile(
    r"(?P<name>[?&;](?:[\w.-]*token|[\w.-]*secret|password|passwd|pwd|api[_-]?key|apikey|key|"
    r"auth|authorization|sig|signature|credential|x-amz-signature|x-amz-credential|"
    r"x-amz-security-token|x-goog-signature|x-goog-credential)=)(?P<value>[^&#;\s'\"]+)",
    re.I,
)


def redact_text(text: str) -> str:
    """``text`` with URL credentials replaced by ``***`` (everything else unchanged)."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
    return _SECRET_QUERY.sub(lambda m: f"{m['name']}{REDACTED}", text)


def redact(value: Any) -> Any:
    """A copy of ``value`` with every string (in dicts, lists, tuples) passed through
    ``redact_text``; other values are returned as they are. The input is never modified."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {key: redact(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return tuple(redact(item) for item in value)
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value
