"""Hide credentials embedded in URLs before a value is logged or recorded.

A dataset archive URL may carry credentials (``https://user:password@host/...``, a password
holding ``@`` included, ``...?token=...``, ``&pass=...``, ``#access_token=...``, presigned
``X-Amz-Signature=...``). Parameters end up in MLflow, in log lines
and in error messages, all readable by more people than the credentials are meant for; every
place that records a user-supplied value passes it through ``redact`` first. No kedro imports, so
library code (e.g. ``data/download.py`` messages) can use it too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "***"

# scheme://userinfo@ : everything up to the authority's LAST "@" (a password may contain "@")
_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<userinfo>[^/?#\s]+)@", re.I)
# a query or fragment value whose key looks like a secret (access_token, pass, api_key,
# client_secret, X-Amz-Signature, sig, auth, credential, ...)
_SECRET_WORDS = r"token|pass|pwd|key|secret|sig|auth|credential"
_SECRET_QUERY = re.compile(
    rf"(?P<name>[?&;#][\w.-]*(?:{_SECRET_WORDS})[\w.-]*=)(?P<value>[^&#;\s'\"]+)", re.I)


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
