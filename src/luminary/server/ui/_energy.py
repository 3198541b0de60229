"""The page about a project's energy and cost: the energy its runs measured or were estimated
to use, and what that would cost and emit at each option of the price sheet."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from luminary.server.ui._web import Web, pages

__all__ = ["router"]


def router(web: Web) -> APIRouter:
    r = APIRouter(include_in_schema=False)
    store = web.store

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
