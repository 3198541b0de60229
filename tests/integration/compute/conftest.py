"""Compute's integration fixtures: real engines started once per session."""

from tests.integration.compute.ray_cluster import ray_cluster

__all__ = ["ray_cluster"]
