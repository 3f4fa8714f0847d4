"""Starting and stopping Ray for a run (imported only when an engine is ``ray``).

``connect`` is idempotent, so library code called from a notebook starts Ray itself while a
Kedro run has it started once by the project hook (and stopped by it, also on failure).
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)

# Ray's switch for "this machine is not part of a cluster": it then binds the nodes it starts to
# the loopback address (its default picks the host's network address).
_LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def loopback_only() -> None:
    """A Ray instance started here (a local one, or the test clusters) listens on loopback
    only: it needs no network, and nothing outside the machine should reach it."""
    os.environ[_LOOPBACK_ONLY] = "0"  # read by Ray at import time, and by the nodes it spawns
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report (offline machines)
    from ray._private import ray_constants  # already imported when Ray was loaded earlier

    ray_constants.ENABLE_RAY_CLUSTER = False


def connect(address: str | None) -> bool:
    """Join the cluster at ``address`` ("auto", "ray://host:10001", "host:port"), or start a
    local instance sized to this machine when None. Returns whether this call started the
    connection (the caller then owns ``ray.shutdown``)."""
    if address is None:
        loopback_only()
    import ray

    if ray.is_initialized():
        return False
    ray.init(address=address, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    logger.info("Ray: %s, resources %s", address or "local instance", ray.cluster_resources())
    return True


def disconnect() -> None:
    """Leave the cluster (and stop a local instance this process started)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
        logger.info("Ray: disconnected.")
