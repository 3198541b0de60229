"""Pages about datasets: the dataset list, a dataset's versions, and the diff of two of its
versions' manifests."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from luminary.errors import LuminaryError
from luminary.server.ui._web import Web, pages

__all__ = ["MAX_CHANGES", "router"]

#: Changes listed on a dataset diff page; the summary counts them all.
MAX_CHANGES = 500


def router(web: Web) -> APIRouter:
    r = APIRouter(include_in_schema=False)
    store = web.store

    @r.get("/datasets")
    @pages(web)
    def datasets(request: Request) -> Response:
        principal = web.principal(request)
        shown = web.guard.only_visible(principal, store.list_datasets(), lambda d: d.project)
        return web.render(request, "datasets.html", datasets=shown)

    @r.get("/datasets/{name}")
    @pages(web)
    def dataset(request: Request, name: str, a: str = "", b: str = "") -> Response:
        principal = web.principal(request)
        web.check(principal, "dataset", name)
        found = store.get_dataset(name)
        versions = store.list_dataset_versions(name)
        changes: list[object] = []
        summary = None
        problem = None
        if a and b:
            from luminary.datasets import DiffTally, diff_manifests

            old = store.get_dataset_version(f"{name}@{a}")
            new = store.get_dataset_version(f"{name}@{b}")
            tally = DiffTally()
            try:
                with (
                    store.blobs.open_verified(old.manifest_digest) as fa,
                    store.blobs.open_verified(new.manifest_digest) as fb,
                ):
                    for change in diff_manifests(fa, fb, tally=tally, names=(old.ref, new.ref)):
                        if len(changes) < MAX_CHANGES:
                            changes.append(change)
                summary = tally.summary()
            except LuminaryError as exc:
                problem = exc.message
        return web.render(
            request,
            "dataset.html",
            dataset=found,
            versions=versions,
            a=a,
            b=b,
            changes=changes,
            summary=summary,
            problem=problem,
            max_changes=MAX_CHANGES,
        )

    return r
