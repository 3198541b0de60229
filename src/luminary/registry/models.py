"""Registry values: models, immutable versions, aliases and their history, events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from luminary.names import ModelRef, check_alias, check_name, parse_ref

__all__ = [
    "AliasMove",
    "Event",
    "Model",
    "ModelRef",
    "ModelVersion",
    "check_alias",
    "check_name",
    "parse_ref",
]


@dataclass(frozen=True)
class Model:
    id: str
    name: str
    project: str
    description: str
    created_at: datetime
    latest_version: int | None = None
    aliases: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "project": self.project,
            "description": self.description,
            "created_at": self.created_at.isoformat(),
            "latest_version": self.latest_version,
            "aliases": dict(self.aliases),
        }


@dataclass(frozen=True)
class ModelVersion:
    """An immutable model version: one file in the blob store, its signature and its origin."""

    id: str
    model: str
    version: int
    digest: str
    size: int
    format: str
    filename: str
    signature: dict[str, Any]
    metadata: dict[str, Any]
    source_run_id: str | None
    metrics: dict[str, float]
    parent: str | None  # "name@version" of the version this one was derived from
    description: str
    created_at: datetime
    created_by: str
    aliases: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        from luminary.tracking.models import json_float

        return {
            "ref": self.ref,
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "digest": self.digest,
            "size": self.size,
            "format": self.format,
            "filename": self.filename,
            "signature": self.signature,
            "metadata": self.metadata,
            "source_run_id": self.source_run_id,
            "metrics": {k: json_float(v) for k, v in self.metrics.items()},
            "parent": self.parent,
            "description": self.description,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "aliases": list(self.aliases),
        }


@dataclass(frozen=True)
class AliasMove:
    model: str
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "alias": self.alias,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "actor": self.actor,
            "at": self.at.isoformat(),
        }


@dataclass(frozen=True)
class Event:
    """One entry of the event log that retraining triggers and serving hot-reload read."""

    seq: int
    kind: str  # model.registered, model.deleted, alias.set, alias.unset, dataset.version
    subject: str  # e.g. "jet-tagger@3", "jets@2"
    payload: dict[str, Any]
    actor: str
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "subject": self.subject,
            "payload": self.payload,
            "actor": self.actor,
            "at": self.at.isoformat(),
        }
