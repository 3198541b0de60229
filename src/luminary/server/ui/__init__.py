"""The web interface: server-rendered pages (Jinja2, autoescaped) over the same Store and
access control as the REST API, with vendored uPlot and htmx under ``/ui/static/`` (no CDN, no
build step; tables work with JavaScript off).

Addresses: ``/`` (projects), ``/projects/{project}`` (runs table), ``/projects/{project}/energy``,
``/projects/{project}/studies``, ``/projects/{project}/studies/{name}``, ``/runs/{run_id}``,
``/runs/{run_id}/series/{key}`` (JSON, downsampled), ``/compare?runs=a,b``, ``/models``,
``/models/{name}``, ``/models/{name}/versions/{v}/lineage``, ``/datasets``,
``/datasets/{name}``, ``/resources``, ``/queue``, ``/queue/jobs/{job_id}``, ``/login``,
``/logout``. None is in the OpenAPI schema.

One module per page family, each with its own router: ``_runs`` (projects, runs, comparison,
chart series, artifact downloads through ``_download``), ``_models`` (models, aliases, lineage
laid out by ``_graph``), ``_datasets``, ``_resources`` (this machine), ``_queue`` (pools, fair
share, usage over time, jobs and a job's page), ``_energy`` (a project's energy and cost),
``_tune`` (hyperparameter studies: plots, importance, the cost to reach the best) and
``_session`` (login, logout). ``_web`` holds what every page shares: the templates, the
session, CSRF and error pages; ``_series`` shrinks a metric for a chart.
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
    from luminary.server.ui import (
        _datasets,
        _energy,
        _models,
        _queue,
        _resources,
        _runs,
        _session,
        _tune,
    )
    from luminary.server.ui._web import Web

    web = Web(store, guard)
    app.state.web = web
    app.include_router(_runs.router(web))
    app.include_router(_session.router(web))
    app.include_router(_models.router(web))
    app.include_router(_datasets.router(web))
    app.include_router(_resources.router(web))
    app.include_router(_queue.router(web))
    app.include_router(_energy.router(web))
    app.include_router(_tune.router(web))
    static = Path(__file__).parent / "static"
    app.mount(STATIC, StaticFiles(directory=static), name="ui-static")
