"""Pages about models: the model list, a model's versions and aliases with their history,
moving an alias, and a version's lineage drawn as a graph."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from luminary.auth.models import Role
from luminary.errors import InvalidArgumentError
from luminary.server.ui._graph import NODE_H, NODE_W, lineage_graph
from luminary.server.ui._web import FormData, Web, check_csrf, pages

__all__ = ["router"]


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

    return r
