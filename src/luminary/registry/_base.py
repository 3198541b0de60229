"""The registry half of the Store interface (models, versions, aliases, events)."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any

from luminary.registry.models import AliasMove, Event, Model, ModelRef, ModelVersion

__all__ = ["RegistryStore"]


class RegistryStore(abc.ABC):
    """Versions are immutable; alias moves and registrations are transactional and each writes
    an :class:`Event` in the same transaction. Unknown names raise ``NotFoundError`` with the
    nearest names."""

    @abc.abstractmethod
    def create_model(self, name: str, project: str, description: str = "") -> Model: ...

    @abc.abstractmethod
    def get_model(self, name: str) -> Model: ...

    @abc.abstractmethod
    def list_models(self, project: str | None = None) -> list[Model]: ...

    @abc.abstractmethod
    def delete_model(self, name: str, actor: str) -> None: ...

    @abc.abstractmethod
    def create_model_version(
        self,
        name: str,
        *,
        project: str,
        digest: str,
        size: int,
        format: str,
        filename: str,
        signature: Mapping[str, Any],
        metadata: Mapping[str, Any],
        source_run_id: str | None,
        parent: str | ModelRef | None,
        description: str,
        actor: str,
    ) -> ModelVersion:
        """Register the next version of ``name`` (the model is created in ``project`` if new)."""

    @abc.abstractmethod
    def get_model_version(self, ref: str | ModelRef) -> ModelVersion:
        """``name@3``, ``name@production``, or ``name`` / ``name@latest`` (newest)."""

    @abc.abstractmethod
    def list_model_versions(self, name: str) -> list[ModelVersion]: ...

    @abc.abstractmethod
    def delete_model_version(self, ref: str | ModelRef, actor: str) -> None:
        """Delete a version no alias points to."""

    @abc.abstractmethod
    def set_alias(self, name: str, alias: str, version: int, actor: str) -> AliasMove: ...

    @abc.abstractmethod
    def unset_alias(self, name: str, alias: str, actor: str) -> AliasMove: ...

    @abc.abstractmethod
    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]: ...

    @abc.abstractmethod
    def list_events(
        self, after: int = 0, limit: int = 100, kinds: Sequence[str] | None = None
    ) -> list[Event]:
        """Events with ``seq > after``, oldest first."""

    @abc.abstractmethod
    def versions_from_run(self, run_id: str) -> list[ModelVersion]: ...

    @abc.abstractmethod
    def derived_versions(self, ref: str | ModelRef) -> list[ModelVersion]:
        """Versions whose parent is ``ref``."""
