"""Servers without access control answer this machine's own addresses only.

``luminary ui`` and ``luminary server --no-auth`` serve everyone as admin and bind a loopback
interface. Binding alone does not stop a web page from driving them: a domain whose DNS answer
switches to 127.0.0.1 (DNS rebinding) makes the browser send that page's requests to the local
server, under the attacker's host name. So in every no-login mode:

- the ``Host`` header must name a loopback host (``localhost``, 127.0.0.0/8, ``[::1]``, any
  port); anything else, or none, is refused with ``403`` before any route runs;
- a state-changing request (``POST``, ``PUT``, ``PATCH``, ``DELETE``) that carries an
  ``Origin`` must come from a loopback origin; a request without ``Origin`` (the SDK, curl) is
  let through, since browsers always send one on such requests from another site.

Team mode does not need this: every request carries a token, which a rebinding page has not.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from luminary._net import host_of, is_loopback
from luminary.server._errors import error_response

__all__ = ["LoopbackOnly"]

_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_FIX = (
    "this server runs without access control (luminary ui, luminary server --no-auth) and "
    "answers only requests addressed to this machine: open it as http://127.0.0.1:PORT/ or "
    "http://localhost:PORT/, or serve other hosts with `luminary server` in team mode (tokens)"
)


class LoopbackOnly:
    """Pure ASGI middleware: refuse requests whose ``Host`` (or, on writes, ``Origin``) is not
    a loopback name."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", ())}
        host = headers.get(b"host", b"").decode("latin-1")
        problem = None
        if not host or not is_loopback(host_of(host)):
            problem = f"Host {host!r} was refused: {_FIX}"
        elif scope.get("method") in _WRITES and b"origin" in headers:
            origin = headers[b"origin"].decode("latin-1")
            if not _loopback_origin(origin):
                problem = f"a {scope.get('method')} from Origin {origin!r} was refused: {_FIX}"
        if problem is not None:
            await error_response(403, "permission_denied", problem)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _loopback_origin(origin: str) -> bool:
    parts = urlsplit(origin.strip())
    return parts.scheme in ("http", "https") and is_loopback(host_of(parts.netloc))
