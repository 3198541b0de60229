"""The access-control store: users, tokens and roles. Served only by the server's own
database (SQLite or PostgreSQL); clients never manage tokens through another store."""

from __future__ import annotations

import abc
from collections.abc import Collection, Sequence

from luminary.auth.models import Principal, Role, Token, User

__all__ = ["AuthStore"]


class AuthStore(abc.ABC):
    @abc.abstractmethod
    def create_user(self, name: str, *, is_admin: bool = False) -> User: ...

    @abc.abstractmethod
    def get_user(self, name: str) -> User: ...

    @abc.abstractmethod
    def list_users(self) -> list[User]: ...

    @abc.abstractmethod
    def ensure_user(self, name: str, *, is_admin: bool = False) -> User:
        """The user called ``name``, created if missing; ``is_admin=True`` promotes it."""

    @abc.abstractmethod
    def grant(self, user: str, project: str, role: Role) -> None:
        """Give ``user`` ``role`` in ``project`` (created if missing), replacing any other."""

    @abc.abstractmethod
    def create_token(
        self, user: str, *, description: str = "", expires_in_s: float | None = None
    ) -> tuple[Token, str]:
        """A new token for ``user``: its record, and the secret (shown once, stored hashed)."""

    @abc.abstractmethod
    def list_tokens(self, user: str | None = None) -> list[Token]: ...

    @abc.abstractmethod
    def revoke_token(self, token_id: str) -> Token: ...

    @abc.abstractmethod
    def authenticate(self, secret: str) -> Principal:
        """Who ``secret`` belongs to; ``AuthenticationError`` saying why when it is malformed,
        unknown, wrong, expired or revoked."""

    @abc.abstractmethod
    def has_admin_token(self) -> bool:
        """Whether some server admin holds a usable token (team mode refuses to start without)."""

    # -- what objects point at (for the guard's checks of links and blob reads) -------------
    @abc.abstractmethod
    def dataset_version_projects(self, ids: Sequence[str]) -> dict[str, str]:
        """``{version id: project id}`` of the dataset versions among ``ids`` that exist."""

    @abc.abstractmethod
    def referenced_blobs(self, digests: Collection[str], among: Collection[str]) -> set[str]:
        """Those of ``digests`` that a run artifact, model version, or dataset manifest or
        schema in one of the projects ``among`` (ids) names."""

    @abc.abstractmethod
    def record_upload(self, digest: str, user: str) -> None:
        """Note that ``user`` uploaded bytes hashing to ``digest`` (durable; a user the store
        does not know, such as the server's own when access control is off, is not noted)."""

    @abc.abstractmethod
    def uploaded_blobs(self, digests: Collection[str], user: str) -> set[str]:
        """Those of ``digests`` whose bytes ``user`` has uploaded."""

    @abc.abstractmethod
    def copy_manifests(self, among: Collection[str]) -> list[tuple[str, str]]:
        """``(version id, manifest digest)`` of the copy-mode dataset versions in the projects
        ``among`` (ids), whose files are blobs named only inside the manifest."""
