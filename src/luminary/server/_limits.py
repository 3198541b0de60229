"""Request bodies: a size limit for JSON and the content types each endpoint accepts.

An ASGI middleware, so a body over the limit is refused without being read whole:

- A JSON request body over :data:`MAX_JSON_BYTES` (``LUMINARY_MAX_JSON_BYTES``, default
  64 MiB) is answered ``413 payload_too_large``: at once when ``Content-Length`` says so, else
  as soon as the streamed body passes the limit.
- Blob and upload-chunk ``PUT`` s (``/api/v1/blobs/{digest}``, ``/api/v1/uploads/{id}``) take
  ``application/octet-stream`` of any length; every other body must be JSON
  (``application/json`` or ``application/*+json``). Another content type is answered
  ``415 unsupported_media_type`` naming what is accepted. A body without a content type is
  taken for what the endpoint accepts.

Error bodies keep the ``{code, message, details}`` shape of :mod:`luminary.server._errors`.
"""

from __future__ import annotations

import os
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from luminary.errors import InvalidArgumentError
from luminary.server._errors import error_response

__all__ = ["MAX_JSON_BYTES", "BodyLimits", "max_json_bytes"]

#: Default limit on a JSON request body.
MAX_JSON_BYTES = 64 << 20
_ENV = "LUMINARY_MAX_JSON_BYTES"
_BINARY = re.compile(r"/api/v1/(blobs/[^/]+|uploads/[^/]+)")
_JSON = "application/json"
_OCTETS = "application/octet-stream"


def max_json_bytes() -> int:
    """The JSON body limit: ``LUMINARY_MAX_JSON_BYTES`` or :data:`MAX_JSON_BYTES`."""
    raw = os.environ.get(_ENV)
    if raw is None or not raw.strip():
        return MAX_JSON_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value <= 0:
        msg = f"{_ENV}={raw!r} is not valid; give a positive number of bytes"
        raise InvalidArgumentError(msg)
    return value


class _TooLarge(Exception):
    """The streamed body passed the limit."""


class BodyLimits:
    """``app.add_middleware(BodyLimits)``; ``max_json`` defaults to :func:`max_json_bytes`."""

    def __init__(self, app: ASGIApp, max_json: int | None = None) -> None:
        self.app = app
        self.max_json = max_json_bytes() if max_json is None else max_json

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        length = headers.get("content-length")
        chunked = "chunked" in headers.get("transfer-encoding", "")
        if not chunked and (length is None or length.strip() == "0"):
            await self.app(scope, receive, send)  # no body: nothing to limit or type-check
            return
        path: str = scope["path"]
        if not path.startswith("/api/"):  # the web pages' forms: read (and limited) by the UI
            await self.app(scope, receive, send)
            return
        binary = scope["method"] == "PUT" and _BINARY.fullmatch(path) is not None
        ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype and not _accepts(ctype, binary=binary):
            accepted = _OCTETS if binary else f"{_JSON} (or application/*+json)"
            msg = (
                f"{scope['method']} {path} takes a body of type {accepted}, not {ctype!r}; "
                "send it with that content type"
            )
            details = {"content_type": ctype, "accepted": [accepted.split(" ", 1)[0]]}
            await error_response(415, "unsupported_media_type", msg, details)(scope, receive, send)
            return
        if binary:
            await self.app(scope, receive, send)
            return
        limit = self.max_json
        if length is not None and length.strip().isdigit() and int(length) > limit:
            await self._too_large(scope, receive, send, int(length))
            return
        await self._counted(scope, receive, send, limit)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        seen = 0
        over = False
        started = False

        async def counting_receive() -> Message:
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    over = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over and not started:  # the app answered the broken read its own way: 413 instead
                return
            started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _TooLarge:
            if started:
                raise
        if over and not started:
            await self._too_large(scope, receive, send, None)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, n: int | None) -> None:
        size = f"{n} bytes" if n is not None else "more than that"
        msg = (
            f"the JSON body of {scope['method']} {scope['path']} is {size}; the server takes at "
            f"most {self.max_json} bytes ({_ENV}). Send less per request (e.g. smaller batches)"
        )
        details: dict[str, Any] = {"limit": self.max_json}
        if n is not None:
            details["size"] = n
        resp = error_response(413, "payload_too_large", msg, details)
        resp.headers["connection"] = "close"
        await resp(scope, receive, send)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _accepts(ctype: str, *, binary: bool) -> bool:
    if binary:
        return ctype == _OCTETS
    return ctype == _JSON or (ctype.startswith("application/") and ctype.endswith("+json"))
