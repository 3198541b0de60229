"""``luminary ui``: the web interface over the embedded home's store, on this machine only."""

from __future__ import annotations

from typing import Annotated

import typer

from luminary.cli._output import out

PORT = typer.Option("--port", "-p", min=0, max=65535, help="TCP port (0: any free port).")
HOST = typer.Option("--host", help="Loopback interface to bind (127.0.0.1, ::1 or localhost).")


def ui(
    port: Annotated[int, PORT] = 5050,
    host: Annotated[str, HOST] = "127.0.0.1",
) -> None:
    """Open the web interface of the embedded home (LUMINARY_HOME) at http://HOST:PORT/ until
    Ctrl-C. No login: it binds a loopback address only; share a team's runs with
    `luminary server` instead."""
    import socket

    from luminary._net import is_loopback
    from luminary._optional import require
    from luminary.config import Settings
    from luminary.errors import InvalidArgumentError
    from luminary.store import SqlStore

    for module in ("fastapi", "jinja2"):
        require(module, "server", "luminary ui")
    uvicorn = require("uvicorn", "server", "luminary ui")
    from luminary.server import create_app

    if not is_loopback(host):
        msg = (
            f"luminary ui serves without login, so it binds a loopback host only, not {host}; "
            "use `luminary server` (team mode, tokens) to serve a network"
        )
        raise InvalidArgumentError(msg)
    settings = Settings.from_env()
    store = SqlStore(
        settings.db_url,
        settings.blobs_url,
        stale_after_s=settings.stale_after_s,
        sqlite_sync=settings.sqlite_sync,
    )
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        store.close()
        msg = f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port"
        raise InvalidArgumentError(msg) from exc
    bound = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    out.print(f"Luminary UI on http://{shown}:{bound}/  (store: {settings.home}; Ctrl-C stops)")
    app = create_app(store, tmp_dir=settings.home / "tmp" / "uploads", auth=False)
    config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="none")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        store.close()
