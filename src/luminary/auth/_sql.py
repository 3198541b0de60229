"""Access control on SQL: auth's part of :class:`luminary.store.SqlStore`."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from luminary._clock import from_ms, now_ms, utc
from luminary._ids import new_id
from luminary.auth import _refs
from luminary.auth._base import AuthStore
from luminary.auth.models import Principal, Role, Token, User
from luminary.errors import (
    AlreadyExistsError,
    AuthenticationError,
    InvalidArgumentError,
    NotFoundError,
    nearest,
)
from luminary.names import check_name
from luminary.storage import schema as t
from luminary.storage.engine import read_tx, write_tx

if TYPE_CHECKING:
    from luminary.tracking import SqlTracking

__all__ = ["SqlAuth", "TOKEN_PREFIX"]

TOKEN_PREFIX = "lum_"
_TOKEN = re.compile(r"^lum_([0-9a-z]{16})_([0-9a-f]{64})$")
_TOUCH_EVERY_MS = 60_000  # last_used is refreshed at most once a minute per token


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class SqlAuth(AuthStore):
    """Users, tokens and roles on SQLAlchemy. Projects are ``runs``'s, created on first use."""

    def __init__(self, engine: sa.Engine, runs: SqlTracking) -> None:
        self.engine = engine
        self._runs = runs

    def create_user(self, name: str, *, is_admin: bool = False) -> User:
        check_name("user", name)
        row: dict[str, Any] = {
            "id": new_id(),
            "name": name,
            "is_admin": is_admin,
            "created_ms": now_ms(),
        }
        try:
            with write_tx(self.engine) as conn:
                conn.execute(t.users.insert(), row)
        except sa.exc.IntegrityError as exc:
            msg = f"user {name!r} already exists"
            raise AlreadyExistsError(msg) from exc
        return User(row["id"], name, is_admin, utc(row["created_ms"]))

    def get_user(self, name: str) -> User:
        with read_tx(self.engine) as conn:
            return self._user(conn, self._user_row(conn, name))

    def list_users(self) -> list[User]:
        with read_tx(self.engine) as conn:
            rows = conn.execute(sa.select(t.users).order_by(t.users.c.name)).all()
            return [self._user(conn, r) for r in rows]

    def ensure_user(self, name: str, *, is_admin: bool = False) -> User:
        try:
            user = self.get_user(name)
        except NotFoundError:
            try:
                return self.create_user(name, is_admin=is_admin)
            except AlreadyExistsError:
                user = self.get_user(name)
        if is_admin and not user.is_admin:
            with write_tx(self.engine) as conn:
                conn.execute(t.users.update().where(t.users.c.id == user.id).values(is_admin=True))
            user = self.get_user(name)
        return user

    def grant(self, user: str, project: str, role: Role) -> None:
        role = Role(role)
        proj = self._runs.ensure_project(project)
        with write_tx(self.engine) as conn:
            row = self._user_row(conn, user)
            r = t.project_roles.c
            conn.execute(
                t.project_roles.delete().where(r.user_id == row.id).where(r.project_id == proj.id)
            )
            conn.execute(
                t.project_roles.insert(),
                {"user_id": row.id, "project_id": proj.id, "role": role.value},
            )

    def create_token(
        self, user: str, *, description: str = "", expires_in_s: float | None = None
    ) -> tuple[Token, str]:
        if expires_in_s is not None and not expires_in_s > 0:
            msg = f"expires_in_s={expires_in_s!r} is not valid; give a positive number of seconds"
            raise InvalidArgumentError(msg)
        token_id = new_id()
        secret = f"{TOKEN_PREFIX}{token_id}_{secrets.token_hex(32)}"
        now = now_ms()
        expires = None if expires_in_s is None else now + int(expires_in_s * 1000)
        with write_tx(self.engine) as conn:
            row = self._user_row(conn, user)
            conn.execute(
                t.tokens.insert(),
                {
                    "id": token_id,
                    "user_id": row.id,
                    "secret_sha256": _sha256(secret),
                    "description": description,
                    "created_ms": now,
                    "expires_ms": expires,
                    "revoked_ms": None,
                    "last_used_ms": None,
                },
            )
        token = Token(token_id, user, description, utc(now), from_ms(expires), None, None)
        return token, secret

    def list_tokens(self, user: str | None = None) -> list[Token]:
        k, u = t.tokens.c, t.users.c
        stmt = (
            sa.select(t.tokens, u.name.label("user_name"))
            .join(t.users, u.id == k.user_id)
            .order_by(k.created_ms)
        )
        if user is not None:
            stmt = stmt.where(u.name == user)
        with read_tx(self.engine) as conn:
            return [_token(r) for r in conn.execute(stmt)]

    def revoke_token(self, token_id: str) -> Token:
        k = t.tokens.c
        with write_tx(self.engine) as conn:
            done = conn.execute(
                t.tokens.update()
                .where(k.id == token_id)
                .where(k.revoked_ms.is_(None))
                .values(revoked_ms=now_ms())
            )
            if done.rowcount == 0:
                exists = conn.execute(sa.select(k.id).where(k.id == token_id)).first()
                if exists is None:
                    ids = conn.execute(sa.select(k.id)).scalars().all()
                    msg = f"no token {token_id!r}; {nearest(token_id, ids, 'token')}"
                    raise NotFoundError(msg)
        return next(tok for tok in self.list_tokens() if tok.id == token_id)

    def authenticate(self, secret: str) -> Principal:
        match = _TOKEN.match(secret.strip()) if isinstance(secret, str) else None
        if match is None:
            msg = (
                "the token is malformed; a Luminary token looks like lum_<16 characters>_<64 "
                "hex digits> (luminary tokens create prints one)"
            )
            raise AuthenticationError(msg)
        token_id = match.group(1)
        now = now_ms()
        with read_tx(self.engine) as conn:
            row = conn.execute(
                sa.select(t.tokens, t.users.c.name, t.users.c.is_admin)
                .join(t.users, t.users.c.id == t.tokens.c.user_id)
                .where(t.tokens.c.id == token_id)
            ).first()
            if row is None or not hmac.compare_digest(row.secret_sha256, _sha256(secret.strip())):
                msg = f"token {token_id} is not valid; ask an admin for a new one"
                raise AuthenticationError(msg)
            if row.revoked_ms is not None:
                msg = f"token {token_id} was revoked at {utc(row.revoked_ms).isoformat()}"
                raise AuthenticationError(msg)
            if row.expires_ms is not None and row.expires_ms <= now:
                msg = f"token {token_id} expired at {utc(row.expires_ms).isoformat()}"
                raise AuthenticationError(msg)
            r = t.project_roles.c
            roles = {
                pr.project_id: Role(pr.role)
                for pr in conn.execute(
                    sa.select(r.project_id, r.role).where(r.user_id == row.user_id)
                )
            }
        if row.last_used_ms is None or now - row.last_used_ms > _TOUCH_EVERY_MS:
            with write_tx(self.engine) as conn:
                conn.execute(
                    t.tokens.update().where(t.tokens.c.id == token_id).values(last_used_ms=now)
                )
        return Principal(row.name, bool(row.is_admin), roles, token_id)

    def has_admin_token(self) -> bool:
        k, u = t.tokens.c, t.users.c
        now = now_ms()
        with read_tx(self.engine) as conn:
            found = conn.execute(
                sa.select(k.id)
                .join(t.users, u.id == k.user_id)
                .where(u.is_admin.is_(True))
                .where(k.revoked_ms.is_(None))
                .where(k.expires_ms.is_(None) | (k.expires_ms > now))
                .limit(1)
            ).first()
        return found is not None

    # -- what objects point at ---------------------------------------------------------------
    def dataset_version_projects(self, ids: Sequence[str]) -> dict[str, str]:
        return _refs.dataset_version_projects(self.engine, ids)

    def referenced_blobs(self, digests: Collection[str], among: Collection[str]) -> set[str]:
        return _refs.referenced_blobs(self.engine, digests, among)

    def record_upload(self, digest: str, user: str) -> None:
        _refs.record_upload(self.engine, digest, user, now_ms())

    def uploaded_blobs(self, digests: Collection[str], user: str) -> set[str]:
        return _refs.uploaded_blobs(self.engine, digests, user)

    def copy_manifests(self, among: Collection[str]) -> list[tuple[str, str]]:
        return _refs.copy_manifests(self.engine, among)

    # -- helpers ---------------------------------------------------------------------------
    def _user_row(self, conn: sa.Connection, name: str) -> Any:
        row = conn.execute(sa.select(t.users).where(t.users.c.name == name)).first()
        if row is None:
            names = conn.execute(sa.select(t.users.c.name)).scalars().all()
            msg = f"no user {name!r}; {nearest(name, names, 'user')}"
            raise NotFoundError(msg)
        return row

    def _user(self, conn: sa.Connection, row: Any) -> User:
        r, p = t.project_roles.c, t.projects.c
        roles = {
            pr.name: Role(pr.role)
            for pr in conn.execute(
                sa.select(p.name, r.role)
                .join(t.projects, p.id == r.project_id)
                .where(r.user_id == row.id)
            )
        }
        return User(row.id, row.name, bool(row.is_admin), utc(row.created_ms), roles)


def _token(row: Any) -> Token:
    return Token(
        id=row.id,
        user=row.user_name,
        description=row.description,
        created_at=utc(row.created_ms),
        expires_at=from_ms(row.expires_ms),
        revoked_at=from_ms(row.revoked_ms),
        last_used_at=from_ms(row.last_used_ms),
    )
