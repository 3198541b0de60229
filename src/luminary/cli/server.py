"""``luminary server``: serve the store over REST (team mode) with uvicorn."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Annotated

import typer

from luminary.cli._output import out

HOST = typer.Option("--host", help="Interface to bind; 0.0.0.0 exposes the server to the network.")
PORT = typer.Option("--port", "-p", min=0, max=65535, help="TCP port (0: any free port).")
DB = typer.Option("--db", help="Database URL (default: LUMINARY_DB, else SQLite in LUMINARY_HOME).")
BLOBS = typer.Option("--blobs", help="Blob store URL (default: LUMINARY_BLOBS, else a folder).")


def server(
    host: Annotated[str, HOST] = "127.0.0.1",
    port: Annotated[int, PORT] = 5000,
    db: Annotated[str | None, DB] = None,
    blobs: Annotated[str | None, BLOBS] = None,
) -> None:
    """Serve the store at http://HOST:PORT/api/v1/ until Ctrl-C (or SIGTERM) stops it;
    requests in flight finish first. Clients set LUMINARY_URI=http://HOST:PORT."""
    import dataclasses
    import socket

    from luminary.config import Settings
    from luminary.errors import MissingDependencyError
    from luminary.store._sql import SqlStore

    try:
        import uvicorn

        from luminary.server import create_app
    except ImportError as exc:
        raise MissingDependencyError.for_module(
            exc.name or "fastapi", "server", "luminary server"
        ) from exc

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
    spool = settings.home / "tmp" / "uploads"
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        store.close()
        from luminary.errors import InvalidArgumentError

        msg = f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port"
        raise InvalidArgumentError(msg) from exc
    bound = sock.getsockname()[1]
    out.print(f"Luminary server listening on http://{host}:{bound}  (API under /api/v1/)")
    out.print(f"  database: {store.engine.url.render_as_string(hide_password=True)}")
    out.print(f"  blobs:    {store.blobs.url}")
    out.print(f"  clients:  export LUMINARY_URI=http://{host}:{bound}")
    config = uvicorn.Config(
        create_app(store, tmp_dir=spool),
        log_level="info",
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


def _ignore(sig: int, frame: FrameType | None) -> None:
    """A signal uvicorn already acted on (it stopped serving)."""
