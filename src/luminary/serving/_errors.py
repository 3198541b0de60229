"""Errors the inference protocol reports, each with its HTTP status and gRPC code."""

from __future__ import annotations

from luminary.errors import InvalidArgumentError, LuminaryError, NotFoundError


class ServingError(LuminaryError):
    """Base of the errors a request can end with; the message goes to the client as is.

    Bad input is also an :class:`~luminary.errors.InvalidArgumentError` and an unknown model a
    :class:`~luminary.errors.NotFoundError`, so callers can catch the general errors.
    """

    http_status = 500
    grpc_code = "INTERNAL"


class InvalidInputError(ServingError, InvalidArgumentError):
    """The request is malformed: wrong tensor name, data type, shape or body size."""

    code = "invalid_argument"
    http_status = 400
    grpc_code = "INVALID_ARGUMENT"


class ModelNotFoundError(ServingError, NotFoundError):
    code = "not_found"
    http_status = 404
    grpc_code = "NOT_FOUND"


class UnavailableError(ServingError):
    """The model is not ready, its queue is full, or the request timed out in the queue.

    Clients may retry elsewhere (SONIC falls back to local inference on this code).
    """

    code = "unavailable"
    http_status = 503
    grpc_code = "UNAVAILABLE"


class RequestTooLargeError(ServingError):
    """The request's body (or its inflated body, or its gRPC message) is over the limit."""

    code = "invalid_argument"
    http_status = 413
    grpc_code = "RESOURCE_EXHAUSTED"


class ModelExecutionError(ServingError):
    code = "internal"
    http_status = 500
    grpc_code = "INTERNAL"


class RetiredError(Exception):
    """Internal: the model version was swapped out between lookup and submit; look up again."""
