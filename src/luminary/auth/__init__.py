"""Users, API tokens (stored hashed) and roles per project, for team mode.

A token is ``lum_<id>_<secret>``: the id finds the row, the secret is checked against its
SHA-256 (secrets are 256 random bits, so a slow password hash adds nothing). The secret is shown
once, when the token is created. Roles per project: ``reader`` < ``writer`` < ``admin``; a
server-wide admin may do everything.

:class:`AuthStore` is auth's part of the Store interface (``_base.py``); :class:`SqlAuth` its SQL
(``_sql.py``, with ``_refs.py``: which blobs a caller's projects reference).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from luminary.auth._base import AuthStore
from luminary.auth.models import Principal, Role, Token, User

if TYPE_CHECKING:
    from luminary.auth._sql import TOKEN_PREFIX, SqlAuth

__all__ = ["TOKEN_PREFIX", "AuthStore", "Principal", "Role", "SqlAuth", "Token", "User"]


def __getattr__(name: str) -> Any:
    if name in ("SqlAuth", "TOKEN_PREFIX"):  # SQLAlchemy loads on first use
        from luminary.auth import _sql

        return getattr(_sql, name)
    raise AttributeError(name)
