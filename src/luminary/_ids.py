"""Short, sortable, printable identifiers.

A run id is 16 characters of lower-case Crockford base32: 10 for the creation time in
milliseconds (sortable until the year 10889) and 6 random (30 bits). Ids are never database
row numbers.
"""

from __future__ import annotations

import os
import time

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
