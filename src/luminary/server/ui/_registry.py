"""Pages about models (versions, aliases, alias history, moving an alias, lineage), datasets
(versions, diffs), this machine's resources and a project's energy and cost."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from luminary.auth.models import Role
from luminary.errors import InvalidArgumentError, LuminaryError
from luminary.server.ui._shapes import NODE_H, NODE_W, lineage_graph
from luminary.server.ui._web import FormData, Web, check_csrf, pages

__all__ = ["MAX_CHANGES", "router"]

#: Changes listed on a dataset diff page; the summary counts them all.
MAX_CHANGES = 500


def router(web: Web) -> APIRouter:
    r = APIRouter(include_in_schema=False)
    store = web.store

    @r.get("/models")
    @pages(web)
    def models(request: Request) -> Response:
        principal = web.principal(request)
        shown = web.guard.only_visible(principal, store.list_models(), lambda m: m.project)
        return web.render(request, "models.html", models=shown)

    @r.get("/models/{name}")
    @pages(web)
    def model(request: Request, name: str) -> Response:
        principal = web.principal(request)
        web.check(principal, "model", name)
        found = store.get_model(name)
        writer = (not web.guard.enabled) or principal.is_admin
        if not writer:
            project_id = store.get_project(found.project).id
            role = principal.role_in(project_id)
            writer = role is not None and role.allows(Role.WRITER)
        return web.render(
            request,
            "model.html",
            model=found,
            versions=store.list_model_versions(name),
            history=list(reversed(store.alias_history(name))),
            writer=writer,
        )

    @r.post("/models/{name}/aliases")
    @pages(web)
    def move_alias(request: Request, name: str, data: FormData) -> Response:
        check_csrf(request, data.get("csrf"))
        alias, version = data.get("alias", ""), data.get("version", "")
        principal = web.principal(request)
        web.check(principal, "model", name, Role.WRITER)
        if not version.strip().isdigit():
            msg = f"version must be a version number of {name!r}, not {version!r}"
            raise InvalidArgumentError(msg)
        store.set_alias(name, alias.strip(), int(version), principal.user)
        return RedirectResponse(f"/models/{quote(name, safe='')}", 303)

    @r.get("/models/{name}/versions/{version}/lineage")
    @pages(web)
    def lineage_page(request: Request, name: str, version: str) -> Response:
        principal = web.principal(request)
        web.check(principal, "model", name)
        from luminary.lineage import lineage

        lin = lineage(f"{name}@{version}", store)
        # Everything the graph shows must be readable by this user, as through the API: the
        # run, the data it used, and the versions it derives from or that derive from it.
        if lin.run is not None:
            web.check(principal, "run", lin.run.id)
        for data in lin.inputs:
            web.check(principal, "dataset", data.dataset)
        for other in [*lin.ancestors, *lin.derived]:
            web.check(principal, "model", other.model)
        return web.render(
            request,
            "lineage.html",
            lin=lin,
            graph=lineage_graph(lin),
            node_w=NODE_W,
            node_h=NODE_H,
        )

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

    @r.get("/resources")
    @pages(web)
    def resources(request: Request) -> Response:
        web.principal(request)
        from luminary.compute import collect, rows

        snap = collect(timeout=0.5)
        return web.render(request, "resources.html", host=snap.host, rows=rows(snap))

    @r.get("/projects/{project}/energy")
    @pages(web)
    def energy(request: Request, project: str) -> Response:
        principal = web.principal(request)
        web.check(principal, "project", project)
        store.get_project(project)
        from luminary.costs import cost_report

        report = cost_report(project=project, store=store)
        return web.render(request, "energy.html", project=project, report=report)

    return r
