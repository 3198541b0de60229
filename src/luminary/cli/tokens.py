"""``luminary tokens create|list|revoke``: API tokens for team mode.

Run on the server's host, against the server's database (``LUMINARY_DB`` / ``LUMINARY_HOME``).
"""

from __future__ import annotations

import re
from typing import Annotated

import typer

from luminary.auth import AuthStore
from luminary.cli._output import OUTPUT, Output, emit_json, err, fmt_time, new_table, out
from luminary.errors import InvalidArgumentError

app = typer.Typer(help="API tokens for team mode: created with a role, shown once, stored hashed.")

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """``90s``, ``15m``, ``12h``, ``30d``, ``2w`` in seconds."""
    match = _DURATION.match(text.strip().lower())
    if match is None or float(match.group(1)) <= 0:
        msg = f"duration {text!r} is not valid; write a number and a unit: 90s, 15m, 12h, 30d, 2w"
        raise InvalidArgumentError(msg)
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def _auth_store() -> AuthStore:
    import luminary as lm

    store = lm.get_store()
    if not isinstance(store, AuthStore):
        msg = (
            "tokens are managed on the server's own database: run `luminary tokens` on the "
            "server host with its LUMINARY_DB / LUMINARY_HOME, without LUMINARY_URI"
        )
        raise InvalidArgumentError(msg)
    return store


@app.command("create")
def create(
    user: Annotated[str, typer.Option("--user", "-u", help="Who the token is for.")],
    admin: Annotated[bool, typer.Option("--admin", help="A server-wide admin token.")] = False,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Project the role applies to.")
    ] = None,
    role: Annotated[
        str | None, typer.Option("--role", "-r", help="reader, writer or admin (with --project).")
    ] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="Lifetime, e.g. 30d or 12h (default: none).")
    ] = None,
    description: Annotated[str, typer.Option("--description", "-d")] = "",
    output: Output = OUTPUT,
) -> None:
    """Create a token and print its secret once."""
    from luminary.auth import Role

    if admin == (project is not None):
        msg = "give either --admin, or --project P --role R"
        raise InvalidArgumentError(msg)
    if project is not None and role not in {r.value for r in Role}:
        msg = f"--role {role!r} is not valid; use reader, writer or admin"
        raise InvalidArgumentError(msg)
    lifetime = parse_duration(expires) if expires else None
    store = _auth_store()
    store.ensure_user(user, is_admin=admin)
    if project is not None and role is not None:
        store.grant(user, project, Role(role))
    token, secret = store.create_token(user, description=description, expires_in_s=lifetime)
    if output is Output.json:
        emit_json(
            {
                "token": secret,
                "id": token.id,
                "user": user,
                "expires_at": token.expires_at.isoformat() if token.expires_at else None,
            }
        )
        return
    scope = "server admin" if admin else f"{role} in project {project}"
    out.print(secret, markup=False, highlight=False)
    err.print(
        f"token {token.id} for {user} ({scope}); shown once, store it now. "
        "Use it as LUMINARY_TOKEN."
    )


@app.command("list")
def list_tokens(
    user: Annotated[str | None, typer.Option("--user", "-u")] = None,
    output: Output = OUTPUT,
) -> None:
    """Tokens (never their secrets), with state and last use."""
    store = _auth_store()
    tokens = store.list_tokens(user)
    if output is Output.json:
        emit_json([t.to_dict() for t in tokens])
        return
    table = new_table()
    for col in ("id", "user", "state", "created", "expires", "last used", "description"):
        table.add_column(col)
    for t in tokens:
        state = "[red]revoked[/]" if t.revoked_at else "[green]active[/]"
        table.add_row(
            t.id,
            t.user,
            state,
            fmt_time(t.created_at),
            fmt_time(t.expires_at),
            fmt_time(t.last_used_at),
            t.description,
        )
    out.print(table if tokens else "no tokens yet; `luminary tokens create --user NAME --admin`")


@app.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (not its secret).")],
) -> None:
    """Revoke a token: requests with it are refused from now on."""
    store = _auth_store()
    token = store.revoke_token(token_id)
    out.print(f"revoked token {token.id} of {token.user}")
