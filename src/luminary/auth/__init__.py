"""Users, API tokens (stored hashed) and roles per project, for team mode.

A token is ``lum_<id>_<secret>``: the id finds the row, the secret is checked against its
SHA-256 (secrets are 256 random bits, so a slow password hash adds nothing). The secret is shown
once, when the token is created. Roles per project: ``reader`` < ``writer`` < ``admin``; a
server-wide admin may do everything.
"""

from __future__ import annotations

from luminary.auth.models import Principal, Role, Token, User

__all__ = ["Principal", "Role", "Token", "User"]
