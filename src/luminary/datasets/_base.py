"""The dataset half of the Store interface (datasets, versions, run inputs)."""

from __future__ import annotations

import abc
from collections.abc import Sequence

from luminary.datasets.models import Dataset, DatasetVersion, Mode
from luminary.names import ModelRef

__all__ = ["DatasetStore"]


class DatasetStore(abc.ABC):
    """A version row is written only after its manifest (and, in copy mode, every file) is in the
    blob store, in one transaction with its event: a version is either whole or absent."""

    @abc.abstractmethod
    def create_dataset_version(
        self,
        name: str,
        *,
        project: str,
        mode: Mode,
        root: str,
        manifest_digest: str,
        schema_digest: str | None,
        file_count: int,
        total_bytes: int,
        message: str,
        actor: str,
    ) -> DatasetVersion: ...

    @abc.abstractmethod
    def get_dataset(self, name: str) -> Dataset: ...

    @abc.abstractmethod
    def list_datasets(self, project: str | None = None) -> list[Dataset]: ...

    @abc.abstractmethod
    def get_dataset_version(self, ref: str | ModelRef) -> DatasetVersion:
        """``name@2`` or ``name`` / ``name@latest``."""

    @abc.abstractmethod
    def list_dataset_versions(self, name: str) -> list[DatasetVersion]: ...

    @abc.abstractmethod
    def add_run_inputs(self, run_id: str, version_ids: Sequence[str]) -> None: ...

    @abc.abstractmethod
    def run_inputs(self, run_id: str) -> list[DatasetVersion]: ...

    @abc.abstractmethod
    def runs_using(self, ref: str | ModelRef) -> list[str]:
        """Ids of runs that recorded this dataset version as an input."""
