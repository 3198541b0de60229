"""Values of the access-control layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = ["Principal", "Role", "Token", "User"]


class Role(StrEnum):
    READER = "reader"
    WRITER = "writer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return ("reader", "writer", "admin").index(self.value)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


@dataclass(frozen=True)
class User:
    id: str
    name: str
    is_admin: bool
    created_at: datetime
    roles: dict[str, Role] = field(default_factory=dict)  # project name -> role

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "is_admin": self.is_admin,
            "created_at": self.created_at.isoformat(),
            "roles": {p: r.value for p, r in self.roles.items()},
        }


@dataclass(frozen=True)
class Token:
    """A token's record; the secret itself is never stored."""

    id: str
    user: str
    description: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        def iso(d: datetime | None) -> str | None:
            return None if d is None else d.isoformat()

        return {
            "id": self.id,
            "user": self.user,
            "description": self.description,
            "created_at": self.created_at.isoformat(),
            "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at),
            "last_used_at": iso(self.last_used_at),
        }


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: the user, whether a server admin, and their project roles."""

    user: str
    is_admin: bool
    roles: dict[str, Role] = field(default_factory=dict)  # project id -> role
    token_id: str | None = None

    def role_in(self, project_id: str) -> Role | None:
        return Role.ADMIN if self.is_admin else self.roles.get(project_id)

    def can(self, project_id: str, needed: Role) -> bool:
        role = self.role_in(project_id)
        return role is not None and role.allows(needed)
