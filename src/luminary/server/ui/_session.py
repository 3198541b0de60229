"""The login and logout pages: ``/login`` checks a token with the app's guard and keeps it in
the session cookie; ``/logout`` drops it. With access control off both lead home."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from luminary.errors import AuthenticationError
from luminary.server.ui._web import SESSION_COOKIE, FormData, Web, check_csrf, pages

__all__ = ["router", "safe_next"]


def router(web: Web) -> APIRouter:
    r = APIRouter(include_in_schema=False)

    @r.get("/login")
    def login_form(request: Request, next: str = "/") -> Response:
        if not web.guard.enabled:
            return RedirectResponse("/", 303)
        return web.render(request, "login.html", next=safe_next(next), problem=None)

    @r.post("/login")
    @pages(web)
    def login(request: Request, data: FormData) -> Response:
        check_csrf(request, data.get("csrf"))
        token, next = data.get("token", ""), data.get("next", "/")
        if not web.guard.enabled:
            return RedirectResponse("/", 303)
        try:
            web.guard.authenticate(f"Bearer {token.strip()}")
        except AuthenticationError as exc:
            return web.render(request, "login.html", 401, next=safe_next(next), problem=exc.message)
        response = RedirectResponse(safe_next(next), 303)
        response.set_cookie(
            SESSION_COOKIE,
            token.strip(),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @r.post("/logout")
    @pages(web)
    def logout(request: Request, data: FormData) -> Response:
        check_csrf(request, data.get("csrf"))
        response = RedirectResponse("/login" if web.guard.enabled else "/", 303)
        response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict")
        return response

    return r


def safe_next(target: str | None) -> str:
    """A local path to go back to after login (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
