"""``luminary server``: serve the store over REST (team mode) with uvicorn."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Annotated

import typer

from luminary._net import is_loopback
from luminary.cli._output import out

HOST = typer.Option("--host", help="Interface to bind; 0.0.0.0 exposes the server to the network.")
PORT = typer.Option("--port", "-p", min=0, max=65535, help="TCP port (0: any free port).")
DB = typer.Option("--db", help="Database URL (default: LUMINARY_DB, else SQLite in LUMINARY_HOME).")
BLOBS = typer.Option("--blobs", help="Blob store URL (default: LUMINARY_BLOBS, else a folder).")
NO_AUTH = typer.Option(
    "--no-auth",
    help="Serve without tokens, everyone as admin; only on a loopback --host (127.0.0.1).",
)
ADMIN_TOKEN_FIX = "luminary tokens create --user NAME --admin"


def server(
    host: Annotated[str, HOST] = "127.0.0.1",
    port: Annotated[int, PORT] = 5000,
    db: Annotated[str | None, DB] = None,
    blobs: Annotated[str | None, BLOBS] = None,
    no_auth: Annotated[bool, NO_AUTH] = False,
) -> None:
    """Serve the store at http://HOST:PORT/api/v1/ until Ctrl-C (or SIGTERM) stops it;
    requests in flight finish first. Clients set LUMINARY_URI=http://HOST:PORT and
    LUMINARY_TOKEN. Team mode (the default) needs a server admin token first:
    `luminary tokens create --user NAME --admin`."""
    import dataclasses
    import socket

    from luminary._optional import require
    from luminary.config import Settings
    from luminary.errors import InvalidArgumentError
    from luminary.store import SqlStore

    for module in ("fastapi", "jinja2"):
        require(module, "server", "luminary server")
    uvicorn = require("uvicorn", "server", "luminary server")
    from luminary.server import create_app

    if no_auth and not is_loopback(host):
        msg = (
            f"--no-auth serves everyone as admin, so it only binds a loopback host, not "
            f"--host {host}; drop --no-auth and give clients tokens ({ADMIN_TOKEN_FIX})"
        )
        raise InvalidArgumentError(msg)
    settings = Settings.from_env()
    settings = dataclasses.replace(
        settings, db_url=db or settings.db_url, blobs_url=blobs or settings.blobs_url
    )
    store = SqlStore(
        settings.db_url,
        settings.blobs_url,
        stale_after_s=settings.stale_after_s,
        sqlite_sync=settings.sqlite_sync,
    )
    if not no_auth and not store.has_admin_token():
        store.close()
        msg = (
            "team mode needs a server admin token and this server's database has none usable "
            f"(none, or all expired or revoked). Create one on this host with the same "
            f"LUMINARY_HOME / LUMINARY_DB: `{ADMIN_TOKEN_FIX}`; or, for a server only this "
            "machine reaches, run `luminary server --no-auth`"
        )
        raise InvalidArgumentError(msg)
    spool = settings.home / "tmp" / "uploads"
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        store.close()
        msg = f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port"
        raise InvalidArgumentError(msg) from exc
    bound = sock.getsockname()[1]
    out.print(f"Luminary server listening on http://{host}:{bound}  (API under /api/v1/)")
    out.print(f"  database: {store.engine.url.render_as_string(hide_password=True)}")
    out.print(f"  blobs:    {store.blobs.url}")
    out.print(f"  clients:  export LUMINARY_URI=http://{host}:{bound}")
    if no_auth:
        out.print("  access:   no auth (--no-auth): every local client acts as admin")
    else:
        out.print("  access:   team mode: tokens required (clients: export LUMINARY_TOKEN=...)")
    _log_access_to_stderr()
    config = uvicorn.Config(
        create_app(store, tmp_dir=spool, auth=not no_auth),
        log_level="info",
        access_log=False,  # the JSON access log (luminary.access) replaces uvicorn's
        lifespan="off",
        ws="none",
        timeout_graceful_shutdown=30,
    )
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to whatever
    # handler was there before: make that a no-op, so the store is closed and the exit is 0.
    previous = {sig: signal.signal(sig, _ignore) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
        store.close()
        out.print("Luminary server stopped")


def _log_access_to_stderr() -> None:
    """One JSON line per request on stderr (the ``luminary.access`` logger)."""
    import logging
    import sys

    access = logging.getLogger("luminary.access")
    if not access.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False


def _ignore(sig: int, frame: FrameType | None) -> None:
    """A signal uvicorn already acted on (it stopped serving)."""
