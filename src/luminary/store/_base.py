"""The Store facade's interface: the domains' interfaces side by side, one object to pass around.

Every backend (embedded SQLite, PostgreSQL, REST) implements it; the contract suite in
:mod:`luminary.testing` checks each one the same way. Thread safety: implementations are safe
to share between threads. Values returned are frozen dataclasses. Errors:
:class:`~luminary.errors.NotFoundError` for unknown names (with the nearest ones),
:class:`~luminary.errors.InvalidArgumentError` for bad input,
:class:`~luminary.errors.AlreadyExistsError` for taken names,
:class:`~luminary.errors.BackendUnavailableError` when the database does not answer.
"""

from __future__ import annotations

import abc

from luminary.compute import ComputeStore
from luminary.datasets import DatasetStore
from luminary.registry import RegistryStore
from luminary.tracking import TrackingStore
from luminary.tune import TuneStore

__all__ = ["Store"]


class Store(TrackingStore, RegistryStore, DatasetStore, ComputeStore, TuneStore, abc.ABC):
    """Runs (:class:`~luminary.tracking.TrackingStore`), models
    (:class:`~luminary.registry.RegistryStore`), datasets
    (:class:`~luminary.datasets.DatasetStore`), the job queue
    (:class:`~luminary.compute.ComputeStore`) and hyperparameter studies
    (:class:`~luminary.tune.TuneStore`) over one database and one blob store."""
