"""Datasets: ``/api/v1/datasets``, ``/api/v1/dataset-versions/{name@version}``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel

from luminary.auth.models import Role
from luminary.server._app import ok
from luminary.server._auth import Caller, Guard, require
from luminary.store import Store
from luminary.store.wire import enc_dataset, enc_dataset_version

__all__ = ["router"]


class DatasetVersionIn(BaseModel):
    project: str
    mode: str
    root: str
    manifest_digest: str
    schema_digest: str | None = None
    file_count: int
    total_bytes: int
    message: str = ""


def router(store: Store, guard: Guard) -> APIRouter:
    r = APIRouter()
    reads = [require(Role.READER, "dataset", "name")]
    reads_ref = [require(Role.READER, "dataset", "ref")]

    @r.post("/datasets/{name}/versions")
    def create_version(name: str, body: DatasetVersionIn, caller: Caller) -> Response:
        guard.check(caller, "project", body.project, Role.WRITER)
        if guard.project_of("dataset", name) is not None:  # a new version of an existing one
            guard.check(caller, "dataset", name, Role.WRITER)
        guard.check_dataset_blobs(caller, body.mode, body.manifest_digest, body.schema_digest)
        version = store.create_dataset_version(
            name,
            project=body.project,
            mode=body.mode,  # type: ignore[arg-type]  # the store checks it
            root=body.root,
            manifest_digest=body.manifest_digest,
            schema_digest=body.schema_digest,
            file_count=body.file_count,
            total_bytes=body.total_bytes,
            message=body.message,
            actor=caller.user,  # the authenticated principal, never the request's word
        )
        return ok(enc_dataset_version(version), 201)

    @r.get("/datasets")
    def list_datasets(caller: Caller, project: str | None = None) -> Response:
        if project is not None:
            guard.check(caller, "project", project, Role.READER)
        found = guard.only_visible(caller, store.list_datasets(project), lambda d: d.project)
        return ok([enc_dataset(d) for d in found])

    @r.get("/datasets/{name}", dependencies=reads)
    def get_dataset(name: str) -> Response:
        return ok(enc_dataset(store.get_dataset(name)))

    @r.get("/datasets/{name}/versions", dependencies=reads)
    def list_versions(name: str) -> Response:
        return ok([enc_dataset_version(v) for v in store.list_dataset_versions(name)])

    @r.get("/dataset-versions/{ref}", dependencies=reads_ref)
    def get_version(ref: str) -> Response:
        return ok(enc_dataset_version(store.get_dataset_version(ref)))

    @r.get("/dataset-versions/{ref}/runs", dependencies=reads_ref)
    def runs_using(ref: str, caller: Caller) -> Response:
        run_ids = store.runs_using(ref)
        visible = guard.visible(caller)
        if visible is not None:
            run_ids = [i for i in run_ids if guard.project_of("run", i) in visible]
        return ok({"run_ids": run_ids})

    return r
