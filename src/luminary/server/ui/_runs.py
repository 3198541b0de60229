"""Pages about projects and runs: projects, the runs table, a run (and, when it is a job, the
job's state and output), comparing runs, a metric's series for charts and artifact downloads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from luminary.errors import NotFoundError
from luminary.server._app import ok
from luminary.server.ui._download import download
from luminary.server.ui._series import downsample, envelope
from luminary.server.ui._web import Web, pages
from luminary.store import Store

__all__ = ["PAGE_SIZE", "router"]

PAGE_SIZE = 50
_BASE_COLS = ("name", "status", "start_time", "duration")
_SORTABLE = {k: k for k in ("name", "status", "start_time", "duration")}


def _cols(raw: list[str]) -> list[str]:
    """``cols=params.lr,metrics.auc`` or repeated ``cols``: params.* and metrics.* only."""
    out: list[str] = []
    for part in raw:
        for col in part.split(","):
            col = col.strip()
            if col.startswith(("params.", "metrics.")) and len(col) > 7 and col not in out:
                out.append(col)
    return out


def router(web: Web) -> APIRouter:
    r = APIRouter(include_in_schema=False)
    store = web.store

    @r.get("/")
    @pages(web)
    def projects(request: Request) -> Response:
        principal = web.principal(request)
        seen = web.guard.visible(principal)
        shown = [p for p in store.list_projects() if seen is None or p.name in seen]
        counts = {p.name: store.count_runs(p.name) for p in shown}
        return web.render(request, "projects.html", projects=shown, counts=counts)

    @r.get("/projects/{project}")
    @pages(web)
    def runs_table(
        request: Request,
        project: str,
        filter: str = "",
        sort: str = "start_time",
        desc: bool = True,
        page: Annotated[int, Query(ge=1)] = 1,
        cols: Annotated[list[str] | None, Query()] = None,
    ) -> Response:
        principal = web.principal(request)
        web.check(principal, "project", project)
        store.get_project(project)
        chosen = _cols(cols or [])
        key = _SORTABLE.get(sort) or (sort if sort in chosen else "start_time")
        sort = key if key in chosen or key in _SORTABLE else "start_time"
        order = f"{_quote_field(key)} {'desc' if desc else 'asc'}"
        text = filter.strip() or None
        found = store.search_runs(
            project, text, order, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE
        )
        total = store.count_runs(project, text)
        more = len(found) > PAGE_SIZE
        found = found[:PAGE_SIZE]
        available = sorted(
            {f"params.{k}" for run in found for k in run.params}
            | {f"metrics.{k}" for run in found for k in run.metrics}
        )

        def link(**change: Any) -> str:
            q: dict[str, Any] = {"filter": filter, "sort": sort, "desc": str(desc).lower()}
            q["page"] = page
            if chosen:
                q["cols"] = ",".join(chosen)
            q.update(change)
            return f"/projects/{project}?" + urlencode({k: v for k, v in q.items() if v != ""})

        return web.render(
            request,
            "runs.html",
            project=project,
            runs=found,
            filter=filter,
            sort=sort,
            desc=desc,
            page=page,
            more=more,
            total=total,
            cols=chosen,
            available=available,
            link=link,
            value=_cell,
        )

    @r.get("/runs/{run_id}")
    @pages(web)
    def run_page(request: Request, run_id: str) -> Response:
        principal = web.principal(request)
        web.check(principal, "run", run_id)
        from luminary.costs import usage_of

        run = store.get_run(run_id)
        keys = sorted(store.metric_series(run.id))
        usage = usage_of(run)
        artifacts = store.list_artifacts(run.id)
        return web.render(
            request,
            "run.html",
            run=run,
            environment=store.get_environment(run.id),
            artifacts=artifacts,
            job=_job_of(store, run.tags),
            logs=[a for a in artifacts if a.path.startswith("logs/")],
            inputs=store.run_inputs(run.id),
            models=store.versions_from_run(run.id),
            chart_keys=[k for k in keys if not k.startswith("energy/")],
            energy={k: v for k, v in run.metrics.items() if k.startswith("energy/")},
            usage=usage,
        )

    @r.get("/runs/{run_id}/series/{key:path}")
    @pages(web)
    def series(
        request: Request, run_id: str, key: str, points: Annotated[int, Query(ge=4)] = 1000
    ) -> Response:
        principal = web.principal(request)
        web.check(principal, "run", run_id)
        run = store.get_run(run_id)
        points = min(points, 100_000)
        reduced = store.metric_envelope(run.id, key, max(1, (points - 2) // 2))
        if reduced is not None and reduced[0] > points:
            body = envelope(*reduced)
        else:
            history = store.get_metric_history(run.id, key)
            body = downsample(history.steps, history.values, points)
        return ok({"run_id": run.id, "run_name": run.name, "key": key, **body})

    @r.get("/runs/{run_id}/artifacts/{path:path}")
    @pages(web)
    def artifact(request: Request, run_id: str, path: str) -> Response:
        principal = web.principal(request)
        web.check(principal, "run", run_id)
        entry = next((e for e in store.list_artifacts(run_id) if e.path == path), None)
        if entry is None:
            msg = f"run {run_id!r} has no artifact {path!r}"
            raise NotFoundError(msg)
        return download(store, entry.digest, entry.size, path)

    @r.get("/compare")
    @pages(web)
    def compare(
        request: Request,
        runs: str = "",
        metric: str = "",
        pick: Annotated[list[str] | None, Query()] = None,
    ) -> Response:
        principal = web.principal(request)
        ids = [x.strip() for x in [*runs.split(","), *(pick or [])] if x.strip()][:20]
        chosen = []
        for run_id in ids:
            web.check(principal, "run", run_id)
            chosen.append(store.get_run(run_id))
        params = sorted({k for run in chosen for k in run.params})
        metrics = sorted({k for run in chosen for k in run.metrics})
        keys = sorted({k for run in chosen for k in store.metric_series(run.id)})
        metric = metric if metric in keys else (keys[0] if keys else "")

        def differs(kind: str, key: str) -> bool:
            values = [repr(getattr(run, kind).get(key)) for run in chosen]
            return len(set(values)) > 1

        return web.render(
            request,
            "compare.html",
            runs=chosen,
            ids=",".join(run.id for run in chosen),
            params=params,
            metrics=metrics,
            keys=keys,
            metric=metric,
            differs=differs,
        )

    return r


def _job_of(store: Store, tags: Mapping[str, str]) -> dict[str, str] | None:
    """What the run page says about the job a run is (tag ``luminary.job``): its id, its state
    and reason as the queue has them now (the run's tags, written when it ended, otherwise)."""
    job_id = tags.get("luminary.job")
    if not job_id:
        return None
    state, reason = tags.get("job.state", ""), tags.get("job.reason", "")
    try:
        job = store.get_job(job_id)
    except NotFoundError:
        pass
    else:
        state, reason = job.state.value, job.reason
    return {"id": job_id, "state": state, "reason": reason}


def _quote_field(key: str) -> str:
    """A column for the order-by language; keys with odd characters go in backquotes."""
    kind, _, name = key.partition(".")
    if kind in ("params", "metrics") and not name.replace("_", "a").isalnum():
        return f"{kind}.`{name}`"
    return key


def _cell(run: Any, col: str) -> Any:
    kind, _, name = col.partition(".")
    return (run.params if kind == "params" else run.metrics).get(name)
