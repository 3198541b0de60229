"""The app factory: the Store's nouns under ``/api/v1/``, health checks, one error table."""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import Response

from luminary.errors import LuminaryError
from luminary.server._access import AccessLog
from luminary.server._errors import error_response, install_error_handlers
from luminary.store import Store
from luminary.store.wire import dumps

__all__ = ["API", "create_app", "ok"]

API = "/api/v1"

log = logging.getLogger("luminary.server")


def ok(obj: Any, status: int = 200) -> Response:
    """A JSON response written by the fast encoder (the wire shapes are plain JSON already)."""
    return Response(dumps(obj), status, media_type="application/json")


def _scheduler_lifespan(
    store: Store, every_s: float | None
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        del app
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(every_s or 1.0):
                try:
                    store.schedule()
                except LuminaryError as exc:  # the database is away: try again next time
                    log.warning("scheduler pass failed: %s", exc)

        thread = None
        if every_s is not None:
            thread = threading.Thread(target=loop, name="luminary-scheduler", daemon=True)
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if thread is not None:
                thread.join(timeout=10)

    return lifespan


def create_app(
    store: Store,
    *,
    tmp_dir: str | Path | None = None,
    auth: bool = True,
    auth_cache_s: float | None = None,
    auth_clock: Callable[[], float] | None = None,
    schedule_every_s: float | None = 1.0,
) -> FastAPI:
    """A FastAPI app serving ``store``. Uploads are spooled to ``tmp_dir`` (default: the
    system's temporary folder) while they are hashed. The caller owns and closes ``store``.

    ``auth=True`` (team mode) requires a bearer token on every ``/api/v1`` request and checks
    the caller's role per project (:mod:`luminary.server._auth`); ``auth=False`` serves
    everyone as a server admin (for a loopback-only server) and answers only requests whose
    ``Host`` (and, on writes, ``Origin``) names this machine (:mod:`luminary.server._loopback`).
    Authenticated principals are reused for ``auth_cache_s`` seconds (default
    :data:`~luminary.server._auth.CACHE_S`), timed by ``auth_clock`` (default
    ``time.monotonic``; tests drive their own).

    The server is the job queue's scheduler: every ``schedule_every_s`` seconds (``None``:
    never) while it runs, a thread runs a pass — reaping attempts whose heartbeat stopped,
    placing queued jobs, asking borrowers to make room — so the queue moves and lost jobs are
    requeued even while no agent is claiming work."""
    from luminary.server import _blobs, _datasets, _jobs, _limits, _registry, _runs, _tune
    from luminary.server._auth import CACHE_S, Guard, current_principal

    app = FastAPI(
        lifespan=_scheduler_lifespan(store, schedule_every_s),
        title="Luminary",
        version="1",
        openapi_url=f"{API}/openapi.json",
        docs_url=f"{API}/docs",
        redoc_url=None,
        redirect_slashes=False,
    )
    app.state.store = store
    guard = Guard(
        store,
        enabled=auth,
        cache_s=CACHE_S if auth_cache_s is None else auth_cache_s,
        clock=time.monotonic if auth_clock is None else auth_clock,
    )
    app.state.guard = guard
    install_error_handlers(app)
    app.add_middleware(_limits.BodyLimits)  # JSON body limit, content types (413/415)
    if not auth:  # no login: only this machine's host names (no DNS rebinding)
        from luminary.server._loopback import LoopbackOnly

        app.add_middleware(LoopbackOnly)
    app.add_middleware(AccessLog)  # outermost: logs every answer, 413s included
    spool = Path(tmp_dir) if tmp_dir is not None else Path(tempfile.gettempdir())
    # Every API route authenticates, even one that names no role of its own.
    signed = [Depends(current_principal)]
    app.include_router(_runs.router(store, guard), prefix=API, dependencies=signed)
    app.include_router(_registry.router(store, guard, spool), prefix=API, dependencies=signed)
    app.include_router(_datasets.router(store, guard), prefix=API, dependencies=signed)
    app.include_router(_blobs.router(store, spool, guard), prefix=API, dependencies=signed)
    app.include_router(_jobs.router(store, guard), prefix=API, dependencies=signed)
    app.include_router(_tune.router(store, guard), prefix=API, dependencies=signed)
    from luminary.server import ui

    ui.mount(app, store, guard)  # the web pages (not in the OpenAPI schema)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Response:
        return ok({"status": "ok"})

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> Response:
        try:
            store.list_projects()
        except Exception as exc:  # noqa: BLE001 - readiness reports any failure as not ready
            return error_response(503, "backend_unavailable", f"the store does not answer: {exc}")
        return ok({"status": "ready"})

    return app
