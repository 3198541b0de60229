"""What every page shares: the Jinja2 environment (autoescape on), the login session, the CSRF
token and the mapping of Luminary errors to HTML error pages.

Session: the login page (:mod:`luminary.server.ui._session`) checks a token with the app's
:class:`~luminary.server._auth.Guard` and keeps it in an ``HttpOnly; SameSite=Strict`` cookie;
each page resolves the principal from it the way the REST API resolves a bearer header (same
cache, same roles). With access control off everyone
is the local admin and no login is asked.

CSRF: a random token in a ``SameSite=Strict`` cookie, repeated in a hidden field of every form
(double submit); a POST whose field does not match the cookie is refused with 403.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from luminary.auth.models import Principal, Role
from luminary.errors import (
    AuthenticationError,
    FilterSyntaxError,
    IntegrityError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from luminary.server._auth import Guard, Kind
from luminary.store import Store

__all__ = [
    "CSRF_COOKIE",
    "FormData",
    "SESSION_COOKIE",
    "LoginRequired",
    "Web",
    "check_csrf",
    "pages",
]

SESSION_COOKIE = "luminary_session"
CSRF_COOKIE = "luminary_csrf"
_HERE = Path(__file__).parent
F = TypeVar("F", bound=Callable[..., Any])


class LoginRequired(Exception):
    """Raised by a page when team mode needs a login; answered with a redirect to /login."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class Web:
    """The store, the guard and the templates, shared by the UI's routes."""

    def __init__(self, store: Store, guard: Guard) -> None:
        import jinja2

        self.store = store
        self.guard = guard
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["fmt"] = fmt
        self.env.filters["urlq"] = lambda s: quote(str(s), safe="")

    # -- who is asking ---------------------------------------------------------------------
    def principal(self, request: Request) -> Principal:
        """The logged-in principal; :class:`LoginRequired` when team mode has none usable."""
        if not self.guard.enabled:
            return self.guard.authenticate(None)
        secret = request.cookies.get(SESSION_COOKIE)
        if not secret:
            raise LoginRequired(_here(request))
        try:
            principal = self.guard.authenticate(f"Bearer {secret}")
        except AuthenticationError:
            raise LoginRequired(_here(request)) from None
        request.state.principal = principal
        return principal

    def check(self, principal: Principal, kind: Kind, name: str, role: Role = Role.READER) -> None:
        if self.guard.enabled:
            self.guard.check(principal, kind, name, role)

    # -- answers ---------------------------------------------------------------------------
    def render(
        self, request: Request, template: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        csrf = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "csrf", None)
        fresh = csrf is None
        if csrf is None:
            csrf = secrets.token_urlsafe(32)
            request.state.csrf = csrf
        principal = getattr(request.state, "principal", None)
        html = self.env.get_template(template).render(
            csrf=csrf,
            user=None if principal is None else principal.user,
            team=self.guard.enabled,
            path=request.url.path,
            **context,
        )
        response = HTMLResponse(html, status)
        if fresh:
            response.set_cookie(
                CSRF_COOKIE, csrf, httponly=True, samesite="strict", secure=_https(request)
            )
        return response

    def error(self, request: Request, status: int, title: str, message: str) -> HTMLResponse:
        return self.render(request, "error.html", status, title=title, message=message, where=None)


#: Largest form body the pages accept (a token, an alias name, a version).
MAX_FORM_BYTES = 64 * 1024


async def form(request: Request) -> dict[str, str]:
    """A URL-encoded form's fields (the first value of each), read without python-multipart."""
    from urllib.parse import parse_qs

    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            msg = f"a form body is at most {MAX_FORM_BYTES} bytes"
            raise InvalidArgumentError(msg)
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}


#: A route parameter holding the submitted form.
FormData = Annotated[dict[str, str], Depends(form)]


def check_csrf(request: Request, sent: str | None) -> None:
    """Refuse (403) a POST whose hidden CSRF field does not match the cookie."""
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not sent or not hmac.compare_digest(cookie, sent):
        msg = (
            "the form's CSRF token is missing or does not match this browser's session; "
            "reload the page and submit it again"
        )
        raise PermissionDeniedError(msg)


def pages(web: Web) -> Callable[[F], F]:
    """Decorate a page: Luminary errors become HTML pages with the right status (404, 403, 400
    with the filter's position) and a missing login a redirect to /login."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def page(*args: Any, **kwargs: Any) -> Response:
            request: Request = kwargs["request"]
            try:
                result: Response = fn(*args, **kwargs)
            except LoginRequired as exc:
                return RedirectResponse(f"/login?next={quote(exc.next_path, safe='/')}", 303)
            except FilterSyntaxError as exc:
                return web.render(
                    request,
                    "error.html",
                    400,
                    title="Filter syntax error",
                    message=exc.reason,
                    where=(exc.text, exc.position),
                )
            except NotFoundError as exc:
                return web.error(request, 404, "Not found", exc.message)
            except PermissionDeniedError as exc:
                return web.error(request, 403, "Not allowed", exc.message)
            except InvalidArgumentError as exc:
                return web.error(request, 400, "Bad request", exc.message)
            except IntegrityError as exc:  # stored bytes are damaged: say so, send none
                return web.error(request, 500, "Damaged data", exc.message)
            return result

        return page  # type: ignore[return-value]

    return wrap


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def _https(request: Request) -> bool:
    return request.url.scheme == "https"


def fmt(value: Any) -> str:
    """A compact, readable rendering of a param or metric value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
