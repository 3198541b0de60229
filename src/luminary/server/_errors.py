"""One table from Luminary errors to HTTP status; every error body is ``{code, message, details}``.

The REST client maps ``code`` back to the same error class
(:func:`luminary.store._rest.error_from_body`). Nothing else reaches a client: an unexpected
exception is logged here with its traceback and answered as ``500 internal`` without one.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from luminary.errors import (
    AlreadyExistsError,
    AuthenticationError,
    BackendUnavailableError,
    FilterSyntaxError,
    IntegrityError,
    InvalidArgumentError,
    InvalidStateError,
    LuminaryError,
    MissingDependencyError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    QuotaExceededError,
    StorageFullError,
)
from luminary.store.wire import dumps

__all__ = ["STATUS", "error_response", "install_error_handlers", "status_for"]

log = logging.getLogger("luminary.server")

#: Most specific class first; the first match wins.
STATUS: list[tuple[type[LuminaryError], int]] = [
    (NotFoundError, 404),
    (FilterSyntaxError, 400),
    (InvalidArgumentError, 400),
    (AlreadyExistsError, 409),
    (InvalidStateError, 409),
    # The stored bytes are broken, not the request: a server-side fault, never retried.
    (IntegrityError, 500),
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (QuotaExceededError, 429),
    (OverloadedError, 503),
    # The server's disk is full: retrying soon does not help until someone frees space.
    (StorageFullError, 507),
    (BackendUnavailableError, 503),
    (MissingDependencyError, 500),
    (LuminaryError, 500),
]

_HTTP_CODES = {400: "invalid_argument", 404: "not_found", 405: "method_not_allowed"}


def status_for(exc: LuminaryError) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> Response:
    headers = {"retry-after": "1"} if status in (429, 503) else None
    if status == 401:
        headers = {"www-authenticate": 'Bearer realm="luminary"'}
    body = {"code": code, "message": message, "details": details or {}}
    return Response(dumps(body), status, headers=headers, media_type="application/json")


def _details(exc: LuminaryError) -> dict[str, Any]:
    if isinstance(exc, FilterSyntaxError):
        return {"reason": exc.reason, "text": exc.text, "position": exc.position}
    return {}


def install_error_handlers(app: FastAPI) -> None:
    async def luminary_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LuminaryError)
        status = status_for(exc)
        if status == 500:
            log.error("%s %s: %s", request.method, request.url.path, exc.message)
        return error_response(status, exc.code, exc.message, _details(exc))

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = [
            {"loc": [str(part) for part in e.get("loc", ())], "message": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        where = "; ".join(f"{'.'.join(p['loc'])}: {p['message']}" for p in problems[:5])
        msg = f"the request to {request.url.path} is not valid: {where}"
        return error_response(400, InvalidArgumentError.code, msg, {"errors": problems})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        if exc.status_code == 404:
            msg = f"no such endpoint: {request.method} {request.url.path}"
        else:
            msg = str(exc.detail)
        return error_response(exc.status_code, code, msg)

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
        msg = "internal server error; the server logged the details"
        return error_response(500, "internal", msg)

    app.add_exception_handler(LuminaryError, luminary_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
