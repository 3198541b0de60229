"""Short, sortable, printable identifiers.

A run id is 16 characters of lower-case Crockford base32: 10 for the creation time in
milliseconds (sortable until the year 10889) and 6 random (30 bits). Ids are never database
row numbers.
"""

from __future__ import annotations

import os
import time

from luminary.errors import AmbiguousIdError

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
ID_LENGTH = 16


def new_id(now_ms: int | None = None) -> str:
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    rand = int.from_bytes(os.urandom(4), "big") >> 2
    value = (ms << 30) | rand
    out = []
    for _ in range(ID_LENGTH):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def is_id(text: str) -> bool:
    return len(text) == ID_LENGTH and all(c in _ALPHABET for c in text)


#: How many matches an ambiguous id prefix lists.
CANDIDATES = 10


def ambiguous_prefix(kind: str, prefix: str, candidates: list[tuple[str, str]]) -> AmbiguousIdError:
    """The error for an id ``prefix`` that matches several ``(id, project)`` ``candidates``
    (at most :data:`CANDIDATES` are named; one more in the list means there are more)."""
    shown = candidates[:CANDIDATES]
    listed = ", ".join(f"{i} (project {p})" for i, p in shown)
    more = " and more" if len(candidates) > CANDIDATES else ""
    msg = (
        f"{kind} id prefix {prefix!r} is ambiguous: it matches {listed}{more}; "
        "give more characters of the id"
    )
    return AmbiguousIdError(msg, shown)
