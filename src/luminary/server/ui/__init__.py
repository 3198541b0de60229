"""The web interface: server-rendered pages (Jinja2, autoescaped) over the same Store and
access control as the REST API, with vendored uPlot and htmx under ``/ui/static/`` (no CDN, no
build step; tables work with JavaScript off).

Addresses: ``/`` (projects), ``/projects/{project}`` (runs table), ``/projects/{project}/energy``,
``/runs/{run_id}``, ``/runs/{run_id}/series/{key}`` (JSON, downsampled), ``/compare?runs=a,b``,
``/models``, ``/models/{name}``, ``/models/{name}/versions/{v}/lineage``, ``/datasets``,
``/datasets/{name}``, ``/resources``, ``/login``, ``/logout``. None is in the OpenAPI schema.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from luminary.server._auth import Guard
from luminary.store import Store

__all__ = ["STATIC", "mount"]

STATIC = "/ui/static"


def mount(app: FastAPI, store: Store, guard: Guard) -> None:
    """Add the UI's pages and static files to ``app``."""
    from luminary.server.ui import _registry, _runs
    from luminary.server.ui._web import Web

    web = Web(store, guard)
    app.state.web = web
    app.include_router(_runs.router(web))
    app.include_router(_registry.router(web))
    static = Path(__file__).parent / "static"
    app.mount(STATIC, StaticFiles(directory=static), name="ui-static")
