"""The page about the machine serving the UI: its CPUs, memory, GPUs, energy meters, the store
and Luminary servers, with recommendations, collected when the page is asked for."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from luminary.server.ui._web import Web, pages

__all__ = ["router"]


def router(web: Web) -> APIRouter:
    r = APIRouter(include_in_schema=False)

    @r.get("/resources")
    @pages(web)
    def resources(request: Request) -> Response:
        web.principal(request)
        from luminary.compute import collect, rows

        snap = collect(timeout=0.5)
        return web.render(request, "resources.html", host=snap.host, rows=rows(snap))

    return r
