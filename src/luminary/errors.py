"""Luminary's errors, one tree for the SDK, the CLI and (later) the server.

::

    LuminaryError
    ├── NotFoundError (KeyError)          no such project, run, key, blob
    ├── AlreadyExistsError                the name is taken
    ├── InvalidArgumentError (ValueError) bad input: says the field, the value and what is valid
    │   ├── FilterSyntaxError             a search filter that does not parse; knows the position
    │   └── AmbiguousIdError              an id prefix that matches several objects; lists them
    ├── InvalidStateError                 the object cannot do that now (e.g. a finished run)
    ├── IntegrityError                    stored bytes no longer match their hash
    ├── AuthenticationError               no token, or a wrong, expired or revoked one
    ├── PermissionDeniedError             the token's user may not do that
    ├── BackendUnavailableError           the database or object store does not answer
    │   └── StorageFullError              no space left where the database or a blob is written
    ├── MissingDependencyError (ImportError) an optional extra is not installed
    ├── QuotaExceededError
    └── OverloadedError

Every message names what failed, the offending value, what is valid, and the fix.
"""

from __future__ import annotations

import difflib
import os
import shutil
from collections.abc import Iterable

__all__ = [
    "AlreadyExistsError",
    "AmbiguousIdError",
    "AuthenticationError",
    "BackendUnavailableError",
    "FilterSyntaxError",
    "IntegrityError",
    "InvalidArgumentError",
    "InvalidStateError",
    "LuminaryError",
    "MissingDependencyError",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "StorageFullError",
    "nearest",
]


class LuminaryError(Exception):
    """Root of every error Luminary raises on purpose."""

    code = "luminary_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFoundError(LuminaryError, KeyError):
    """The named object does not exist; the message suggests the nearest names."""

    code = "not_found"

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class AlreadyExistsError(LuminaryError):
    code = "already_exists"


class InvalidArgumentError(LuminaryError, ValueError):
    code = "invalid_argument"


class AmbiguousIdError(InvalidArgumentError):
    """An id prefix that matches more than one object. ``candidates`` holds ``(id, project)``
    of the matches (the first few); the server shows a caller only those in projects they may
    read, and answers ``404`` to a caller who may read none of them."""

    code = "ambiguous_id"

    def __init__(self, message: str, candidates: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.candidates = tuple(candidates)


class FilterSyntaxError(InvalidArgumentError):
    """A filter or order-by expression that does not parse.

    ``position`` is the 0-based character offset of the problem in ``text``.
    """

    code = "filter_syntax"

    def __init__(self, reason: str, text: str, position: int) -> None:
        self.reason = reason
        self.text = text
        self.position = position
        shown, at = text, position
        if len(text) > _FILTER_SHOWN:  # a window around the problem
            start = max(0, min(position - _FILTER_SHOWN // 2, len(text) - _FILTER_SHOWN))
            shown = text[start : start + _FILTER_SHOWN]
            at = position - start
            if start > 0:
                shown, at = "..." + shown, at + 3
            if start + _FILTER_SHOWN < len(text):
                shown += "..."
        caret = " " * at + "^"
        super().__init__(f"{reason} at position {position}:\n  {shown}\n  {caret}")


_FILTER_SHOWN = 100  # characters of a long filter shown around the problem


class InvalidStateError(LuminaryError):
    code = "invalid_state"


class IntegrityError(LuminaryError):
    code = "integrity"


class AuthenticationError(LuminaryError):
    """No credentials, or credentials that are wrong, expired or revoked (HTTP 401)."""

    code = "unauthenticated"


class PermissionDeniedError(LuminaryError):
    """Authenticated, but the user's role does not allow the action (HTTP 403)."""

    code = "permission_denied"


class BackendUnavailableError(LuminaryError):
    code = "backend_unavailable"


class StorageFullError(BackendUnavailableError):
    """The disk (or quota) holding the database or the blobs is full; nothing was written."""

    code = "storage_full"

    @classmethod
    def at(cls, path: str | os.PathLike[str], what: str) -> StorageFullError:
        """The error for ``what`` failing at ``path``, with the free space there now."""
        where = os.fspath(path)
        try:
            free = f"{shutil.disk_usage(where).free:,} bytes free"
        except OSError:
            free = "free space unknown"
        return cls(
            f"no space left on the device holding {where} ({free}) while writing {what}; "
            "nothing was written. Free space there (`luminary store gc` removes leftovers of "
            "failed adds) or point LUMINARY_HOME / LUMINARY_DB / LUMINARY_BLOBS at a larger "
            "disk, then try again"
        )


class MissingDependencyError(LuminaryError, ImportError):
    code = "missing_dependency"

    @classmethod
    def for_module(cls, module: str, extra: str, purpose: str) -> MissingDependencyError:
        return cls(
            f"{purpose} needs the Python package {module!r}, which is not installed; "
            f"install it with: pip install 'luminary[{extra}]'"
        )


class QuotaExceededError(LuminaryError):
    code = "quota_exceeded"


class OverloadedError(LuminaryError):
    code = "overloaded"


def nearest(name: str, candidates: Iterable[str], kind: str) -> str:
    """A "did you mean" clause (or a list of what exists) for a not-found message."""
    pool = list(candidates)
    close = difflib.get_close_matches(name, pool, n=3, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    if not pool:
        return f"there are no {kind}s yet"
    shown = ", ".join(repr(c) for c in sorted(pool)[:5])
    more = f" and {len(pool) - 5} more" if len(pool) > 5 else ""
    return f"existing {kind}s: {shown}{more}"
