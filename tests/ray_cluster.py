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
    from ray.cluster_utils import Cluster

    # Nodes inherit this environment: with tests/ on their path, workers can import the test
    # modules whose classes (toy modules, data modules) the tests ship to them.
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), *filter(None, [path])])
    cluster = Cluster(initialize_head=True, connect=False, head_node_args={
        "num_cpus": cpus_per_node, "object_store_memory": object_store_bytes,
        "include_dashboard": False})
    try:
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=cpus_per_node, object_store_memory=object_store_bytes)
        cluster.wait_for_nodes()
        yield cluster.address
    finally:
        cluster.shutdown()
        if path is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = path
