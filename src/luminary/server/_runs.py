"""Projects and runs: ``/api/v1/projects``, ``/api/v1/runs`` and each run's params, tags,
metrics (batched ingest), artifacts manifest, environment and dataset inputs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from luminary.auth.models import Principal, Role
from luminary.errors import InvalidArgumentError
from luminary.server._app import ok
from luminary.server._auth import Caller, Guard, require
from luminary.store import Store
from luminary.store.wire import (
    dec_artifact,
    dec_params,
    enc_artifact,
    enc_dataset_version,
    enc_history,
    enc_project,
    enc_run,
    enc_version,
    loads,
    to_float,
)
from luminary.tracking import MetricPoint
from luminary.tracking.models import RunStatus

__all__ = ["router"]


class ProjectIn(BaseModel):
    name: str
    description: str = ""


class RunIn(BaseModel):
    project: str
    name: str | None = None
    parent_id: str | None = None
    params: dict[str, tuple[str, str]] = Field(default_factory=dict)
    tags: dict[str, Any] = Field(default_factory=dict)
    start_ms: int | None = None


class StatusIn(BaseModel):
    status: RunStatus
    end_ms: int | None = None


class BeatIn(BaseModel):
    now_ms: int


class ReapIn(BaseModel):
    now_ms: int | None = None


class ParamsIn(BaseModel):
    params: dict[str, tuple[str, str]]


class TagsIn(BaseModel):
    tags: dict[str, Any]


class ArtifactsIn(BaseModel):
    entries: list[tuple[str, str, int]]


class InputsIn(BaseModel):
    version_ids: list[str]


def parse_metric_batch(
    body: bytes,
) -> tuple[list[tuple[int, str]], list[MetricPoint], str | None]:
    """``{"series": [[sid, key], …], "points": [[sid, step, ts_ms, value], …], "batch_id":
    "…"}``; a value is a number, ``null`` (NaN) or ``"Infinity"`` / ``"-Infinity"`` /
    ``"NaN"``; ``batch_id`` (optional) makes the write safe to repeat."""
    try:
        data = loads(body)
        batch_id = data.get("batch_id")
        if batch_id is not None:
            batch_id = _str(batch_id)
        series = [(_int(s[0]), _str(s[1])) for s in data.get("series", ())]
        points: list[MetricPoint] = [
            (
                _int(p[0]),
                _int(p[1]),
                _int(p[2]),
                None if p[3] is None else _value(p[3]),
            )
            for p in data.get("points", ())
        ]
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        msg = (
            'metric batch is not valid; send {"series": [[series_id, key], ...], '
            '"points": [[series_id, step, timestamp_ms, value|null], ...], '
            f'"batch_id": "..." (optional)}} ({exc})'
        )
        raise InvalidArgumentError(msg) from None
    return series, points, batch_id


def _int(v: Any) -> int:
    if type(v) is not int:
        msg = f"{v!r} is not an integer"
        raise TypeError(msg)
    return v


def _str(v: Any) -> str:
    if not isinstance(v, str):
        msg = f"{v!r} is not a string"
        raise TypeError(msg)
    return v


def _value(v: Any) -> float | None:
    if type(v) is float or type(v) is int:
        return float(v)
    f = to_float(v) if isinstance(v, str) else float("x")
    return None if f != f else f


def router(store: Store, guard: Guard) -> APIRouter:
    r = APIRouter()
    reads = [require(Role.READER, "run", "run_id")]
    writes = [require(Role.WRITER, "run", "run_id")]

    # -- projects --------------------------------------------------------------------------
    @r.post("/projects")
    def create_project(body: ProjectIn, caller: Caller) -> Response:
        guard.check_admin(caller, "creating a project")
        return ok(enc_project(store.create_project(body.name, body.description)), 201)

    @r.get("/projects")
    def list_projects(caller: Caller) -> Response:
        projects = guard.only_visible(caller, store.list_projects(), lambda p: p.name)
        return ok([enc_project(p) for p in projects])

    @r.get("/projects/{name}", dependencies=[require(Role.READER, "project", "name")])
    def get_project(name: str) -> Response:
        return ok(enc_project(store.get_project(name)))

    # -- runs ------------------------------------------------------------------------------
    @r.post("/runs")
    def create_run(body: RunIn, caller: Caller) -> Response:
        guard.check(caller, "project", body.project, Role.WRITER)
        if body.parent_id is not None:
            guard.check(caller, "run", body.parent_id, Role.READER)
        run = store.create_run(
            body.project,
            name=body.name,
            parent_id=body.parent_id,
            params=dec_params(body.params),
            tags=body.tags,
            start_ms=body.start_ms,
        )
        return ok(enc_run(run), 201)

    @r.get("/runs")
    def search_runs(
        caller: Caller,
        project: str | None = None,
        filter: str | None = None,
        order_by: list[str] | None = Query(None),  # noqa: B008 - FastAPI's idiom
        limit: int | None = None,
        offset: int = 0,
        within: list[str] | None = Query(None),  # noqa: B008 - FastAPI's idiom
    ) -> Response:
        scope = _scope(guard, caller, project, within)
        if scope is not None and not scope:
            return ok([])
        runs = store.search_runs(project, filter, order_by or None, limit, offset, within=scope)
        return ok([enc_run(x) for x in runs])

    @r.get("/runs/count")
    def count_runs(
        caller: Caller,
        project: str | None = None,
        filter: str | None = None,
        within: list[str] | None = Query(None),  # noqa: B008 - FastAPI's idiom
    ) -> Response:
        scope = _scope(guard, caller, project, within)
        if scope is not None and not scope:
            return ok({"count": 0})
        return ok({"count": store.count_runs(project, filter, within=scope)})

    @r.post("/runs/reap")
    def reap(body: ReapIn, caller: Caller) -> Response:
        guard.check_admin(caller, "reaping stale runs across every project")
        return ok({"count": store.reap_stale_runs(body.now_ms)})

    @r.get("/runs/{run_id}", dependencies=reads)
    def get_run(run_id: str) -> Response:
        return ok(enc_run(store.get_run(run_id)))

    @r.delete("/runs/{run_id}", dependencies=writes)
    def delete_run(run_id: str) -> Response:
        store.delete_run(run_id)
        return Response(status_code=204)

    @r.put("/runs/{run_id}/status", dependencies=writes)
    def set_status(run_id: str, body: StatusIn) -> Response:
        store.set_run_status(run_id, body.status, body.end_ms)
        return Response(status_code=204)

    @r.post("/runs/{run_id}/heartbeat", dependencies=writes)
    def heartbeat(run_id: str, body: BeatIn) -> Response:
        store.heartbeat(run_id, body.now_ms)
        return Response(status_code=204)

    @r.post("/runs/{run_id}/params", dependencies=writes)
    def log_params(run_id: str, body: ParamsIn) -> Response:
        store.log_params(run_id, dec_params(body.params))
        return Response(status_code=204)

    @r.post("/runs/{run_id}/tags", dependencies=writes)
    def set_tags(run_id: str, body: TagsIn) -> Response:
        store.set_tags(run_id, body.tags)
        return Response(status_code=204)

    # -- metrics ---------------------------------------------------------------------------
    @r.post("/runs/{run_id}/metrics", dependencies=writes)
    async def write_metrics(run_id: str, request: Request) -> Response:
        series, points, batch_id = parse_metric_batch(await request.body())
        remap = await run_in_threadpool(store.write_metrics, run_id, series, points, batch_id)
        return ok({"remapped": remap})

    @r.get("/runs/{run_id}/metrics", dependencies=reads)
    def metric_series(run_id: str) -> Response:
        return ok(store.metric_series(run_id))

    @r.get("/runs/{run_id}/last-steps", dependencies=reads)
    def last_steps(run_id: str) -> Response:
        return ok(store.last_steps(run_id))

    @r.get("/runs/{run_id}/metric-history", dependencies=reads)
    def metric_history(run_id: str, key: str) -> Response:
        return ok(enc_history(store.get_metric_history(run_id, key)))

    # -- artifacts, environment, inputs, models ----------------------------------------------
    @r.post("/runs/{run_id}/artifacts", dependencies=writes)
    def add_artifacts(run_id: str, body: ArtifactsIn, caller: Caller) -> Response:
        entries = [dec_artifact(e) for e in body.entries]
        guard.check_names_blobs(caller, "the artifact manifest", (e.digest for e in entries))
        store.add_artifacts(run_id, entries)
        return Response(status_code=204)

    @r.get("/runs/{run_id}/artifacts", dependencies=reads)
    def list_artifacts(run_id: str, prefix: str = "") -> Response:
        return ok([enc_artifact(e) for e in store.list_artifacts(run_id, prefix)])

    @r.put("/runs/{run_id}/environment", dependencies=writes)
    def set_environment(run_id: str, body: dict[str, Any]) -> Response:
        store.set_environment(run_id, body)
        return Response(status_code=204)

    @r.get("/runs/{run_id}/environment", dependencies=reads)
    def get_environment(run_id: str) -> Response:
        return ok(store.get_environment(run_id))

    @r.post("/runs/{run_id}/inputs", dependencies=writes)
    def add_inputs(run_id: str, body: InputsIn, caller: Caller) -> Response:
        guard.check_inputs(caller, body.version_ids)  # reader of each linked version's project
        store.add_run_inputs(run_id, body.version_ids)
        return Response(status_code=204)

    @r.get("/runs/{run_id}/inputs", dependencies=reads)
    def run_inputs(run_id: str) -> Response:
        return ok([enc_dataset_version(v) for v in store.run_inputs(run_id)])

    @r.get("/runs/{run_id}/model-versions", dependencies=reads)
    def versions_from_run(run_id: str) -> Response:
        return ok([enc_version(v) for v in store.versions_from_run(run_id)])

    return r


def _scope(
    guard: Guard, caller: Principal, project: str | None, within: list[str] | None
) -> list[str] | None:
    """The projects a search may look at: ``within`` cut to what ``caller`` may read
    (``None``: no limit). A named project is checked (404 when the caller has no role)."""
    if project is not None:
        guard.check(caller, "project", project, Role.READER)
    visible = guard.visible(caller)
    if visible is None:
        return within
    return sorted(visible if within is None else visible.intersection(within))
