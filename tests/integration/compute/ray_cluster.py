"""The session's Ray cluster: two nodes of 2 logical GPUs and 2 CPUs each on this machine.

Started once per test session (about 20 s on two cores) by
:func:`luminary.testing.ray_cluster.ray_cluster`; a test that kills a node replaces it
(:meth:`RayCluster.replace_node`) before it ends. Without Ray, or when the cluster does not
start, the ``ray`` component is missing (:func:`tests._components.require`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from luminary._optional import available
from luminary.testing.ray_cluster import RayCluster, RayClusterUnavailable
from luminary.testing.ray_cluster import ray_cluster as start_ray_cluster
from tests._components import require


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """A running two-node Ray cluster; its ``address`` is the GCS's ``127.0.0.1:PORT``."""
    if not available("ray"):
        require("ray", "cannot import ray")
    try:
        with start_ray_cluster(nodes=2, gpus=2, cpus=2) as cluster:
            yield cluster
    except RayClusterUnavailable as exc:
        require("ray", f"the local Ray cluster did not start: {exc}")
