"""Datasets: ``/api/v1/datasets``, ``/api/v1/dataset-versions/{name@version}``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel

from luminary.server._app import ok
from luminary.store._base import Store
from luminary.store._wire import enc_dataset, enc_dataset_version

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
    actor: str


def router(store: Store) -> APIRouter:
    r = APIRouter()

    @r.post("/datasets/{name}/versions")
    def create_version(name: str, body: DatasetVersionIn) -> Response:
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
            actor=body.actor,
        )
        return ok(enc_dataset_version(version), 201)

    @r.get("/datasets")
    def list_datasets(project: str | None = None) -> Response:
        return ok([enc_dataset(d) for d in store.list_datasets(project)])

    @r.get("/datasets/{name}")
    def get_dataset(name: str) -> Response:
        return ok(enc_dataset(store.get_dataset(name)))

    @r.get("/datasets/{name}/versions")
    def list_versions(name: str) -> Response:
        return ok([enc_dataset_version(v) for v in store.list_dataset_versions(name)])

    @r.get("/dataset-versions/{ref}")
    def get_version(ref: str) -> Response:
        return ok(enc_dataset_version(store.get_dataset_version(ref)))

    @r.get("/dataset-versions/{ref}/runs")
    def runs_using(ref: str) -> Response:
        return ok({"run_ids": store.runs_using(ref)})

    return r
