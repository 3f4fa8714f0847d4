"""A Ray cluster of two nodes on loopback (one CPU each), shared by the tests of one module."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NODES = 2
OBJECT_STORE_BYTES = 100 * 2**20  # per node: the tests move a few MB; the machine is shared


@contextmanager
def loopback_cluster(nodes: int = NODES, cpus_per_node: int = 1,
                     object_store_bytes: int = OBJECT_STORE_BYTES) -> Iterator[str]:
    """Start ``nodes`` Ray nodes on 127.0.0.1 and yield the head's address; shut all down after.
    Child processes that join it must inherit the loopback switch (set here in os.environ)."""
    from clip_reid.ray_session import loopback_only

    loopback_only()
    # Nodes inherit this environment: with tests/ on their path, workers can import the test
    # modules whose classes (toy modules, data modules) the tests ship to them.
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), *filter(None, [path])])
    try:
        cluster = _started(nodes, cpus_per_node, object_store_bytes)
        try:
            yield cluster.address
        finally:
            cluster.shutdown()
    finally:
        if path is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = path


@contextmanager
def joined_cluster() -> Iterator[str]:
    """A loopback cluster this process has joined (``ray.init``); left and shut down after."""
    import ray

    with loopback_cluster() as address:
        ray.init(address=address, log_to_driver=False)
        try:
            yield address
        finally:
            ray.shutdown()


def _started(nodes: int, cpus_per_node: int, object_store_bytes: int, attempts: int = 3):
    """The cluster, started again when a node misses Ray's fixed 30 s start-up window, which a
    machine shared with other jobs can exceed."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=False, connect=False)
    try:
        for node in range(nodes):
            extra = {"include_dashboard": False} if node == 0 else {}
            cluster.add_node(num_cpus=cpus_per_node, object_store_memory=object_store_bytes,
                             **extra)
        cluster.wait_for_nodes()
    except Exception as error:
        cluster.shutdown()
        if "timed out during startup" not in str(error) or attempts == 1:
            raise
        return _started(nodes, cpus_per_node, object_store_bytes, attempts - 1)
    return cluster
