"""A real Luminary server for tests: uvicorn in a background thread on a free loopback port,
serving a given store; stopped cleanly (``should_exit``) when the context ends."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from luminary.store import Store

__all__ = ["serve_in_thread"]


@contextlib.contextmanager
def serve_in_thread(store: Store, tmp_dir: Path, *, auth: bool) -> Iterator[str]:
    """Serve ``store``; yields the base URL (``http://127.0.0.1:PORT``). ``auth``: team mode
    (tokens and roles) or everyone as admin; every caller says which."""
    pytest.importorskip("fastapi", reason="the server extra (luminary[server]) is not installed")
    uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is not installed")
    from luminary.server import create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(store, tmp_dir=tmp_dir, auth=auth),
        log_level="warning",
        lifespan="off",
        ws="none",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
