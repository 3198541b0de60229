"""Registry values: models, immutable versions, aliases and their history, events."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from luminary._bounds import INT32_MAX
from luminary.errors import InvalidArgumentError

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

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")


_NAME_EXAMPLES = {
    "project": "cms-btag",
    "model": "jet-tagger",
    "dataset": "jets",
    "user": "alice",
}


def check_name(kind: str, name: object) -> str:
    """A project, model or dataset name: 1-200 of letters, digits, '_', '.', '-'."""
    if not isinstance(name, str) or not _NAME.match(name):
        example = _NAME_EXAMPLES.get(kind, "jet-tagger")
        msg = (
            f"{kind} name {name!r} is not valid; use 1-200 characters from letters, digits, "
            f"'_', '.', '-', starting with a letter or digit (e.g. '{example}')"
        )
        raise InvalidArgumentError(msg)
    return name


def check_alias(alias: object) -> str:
    if not isinstance(alias, str) or not _ALIAS.match(alias) or alias == "latest":
        msg = (
            f"alias {alias!r} is not valid; an alias starts with a letter and has up to 64 "
            "letters, digits, '_' or '-' (e.g. 'production', 'staging'); 'latest' is reserved"
        )
        raise InvalidArgumentError(msg)
    return alias


@dataclass(frozen=True)
class ModelRef:
    """``name``, ``name@3``, ``name@production`` or ``name@latest``."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def parse_ref(text: object, kind: str = "model") -> ModelRef:
    """Parse ``name[@version|@alias]``; a bare name or ``@latest`` means the newest version."""
    if not isinstance(text, str):
        msg = f"{kind} reference {text!r} is not valid; write NAME, NAME@VERSION or NAME@ALIAS"
        raise InvalidArgumentError(msg)
    name, sep, tail = text.partition("@")
    check_name(kind, name)
    if not sep or tail == "latest":
        return ModelRef(name)
    if tail.isascii() and tail.isdigit():
        if len(tail) > 10 or not 1 <= int(tail) <= INT32_MAX:
            msg = (
                f"{kind} reference {text[:60]!r}: a version number is an integer from 1 to "
                f"{INT32_MAX}"
            )
            raise InvalidArgumentError(msg)
        return ModelRef(name, version=int(tail))
    try:
        return ModelRef(name, alias=check_alias(tail))
    except InvalidArgumentError:
        msg = (
            f"{kind} reference {text!r} is not valid; write NAME, NAME@VERSION (e.g. "
            f"{name}@3) or NAME@ALIAS (e.g. {name}@production)"
        )
        raise InvalidArgumentError(msg) from None


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
        from luminary.store.models import json_float

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
