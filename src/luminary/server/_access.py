"""The structured access log: one JSON line per request on the ``luminary.access`` logger.

Fields: ``time`` (UTC, ISO 8601), ``method``, ``path``, ``status``, ``duration_ms``,
``bytes_in`` / ``bytes_out`` (body bytes), ``user`` (the authenticated principal, or ``null``)
and ``client`` (``host:port``). ``luminary server`` sends the logger to stderr; nothing is
formatted unless the logger is enabled for INFO.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AccessLog", "access_log"]

access_log = logging.getLogger("luminary.access")

#: Where the route's authentication leaves the principal, in the request's ``scope["state"]``.
PRINCIPAL_KEY = "principal"


class AccessLog:
    """Pure ASGI middleware (no body buffering) that logs each HTTP request once it ends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not access_log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        wall = time.time()
        seen: dict[str, int] = {"status": 500, "in": 0, "out": 0}

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                seen["in"] += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = int(message["status"])
            elif message["type"] == "http.response.body":
                seen["out"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            access_log.info(_line(scope, seen, wall, time.perf_counter() - start))


def _line(scope: Scope, seen: dict[str, int], wall: float, elapsed_s: float) -> str:
    state: dict[str, Any] = scope.get("state") or {}
    principal = state.get(PRINCIPAL_KEY)
    client = scope.get("client")
    record = {
        "time": datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds"),
        "method": scope.get("method"),
        "path": scope.get("path"),
        "status": seen["status"],
        "duration_ms": round(elapsed_s * 1000, 2),
        "bytes_in": seen["in"],
        "bytes_out": seen["out"],
        "user": getattr(principal, "user", None),
        "client": f"{client[0]}:{client[1]}" if client else None,
    }
    return json.dumps(record, separators=(",", ":"))
