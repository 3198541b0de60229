"""Fixtures: a Slurm cluster of two nodes on this machine (Debian's slurm-wlm and munge, run
as root by :mod:`luminary.testing.slurm`), started once per session and stopped at its end.

Without the binaries, or as a non-root user, or when the daemons do not come up, the tests
that use it skip (or fail, where ``LUMINARY_TEST_REQUIRE`` names ``slurm``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from luminary.errors import BackendUnavailableError, MissingDependencyError
from luminary.testing.slurm import SlurmCluster, missing, start_cluster
from tests._components import require
from tests.integration.compute.ray_cluster import ray_cluster

__all__ = ["ray_cluster", "slurm_cluster"]


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    why = missing()
    if why:
        require("slurm", why)
    try:
        cluster = start_cluster(tmp_path_factory.mktemp("slurm"), nodes=2)
    except (MissingDependencyError, BackendUnavailableError) as exc:
        require("slurm", f"the test cluster did not start: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()
