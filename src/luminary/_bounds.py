"""Bounds on numbers that reach a database: every layer (SDK, REST, CLI) checks with these.

SQLite's INTEGER and PostgreSQL's BIGINT hold 64-bit signed integers; PostgreSQL's INTEGER (model
and dataset version numbers) holds 32 bits. Python's ``int`` has no bound, so a number from the
user is checked here, where the message can name the field and the valid range, before a driver
fails with an ``OverflowError`` that names neither.
"""

from __future__ import annotations

import math
import operator

from luminary.errors import InvalidArgumentError

__all__ = ["INT32_MAX", "INT64_MAX", "INT64_MIN", "check_int", "check_real", "show_number"]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1
_SHOWN_DIGITS = 30


def show_number(value: object) -> str:
    """``repr(value)``, shortened for integers too long to read (or for Python to print)."""
    if isinstance(value, int) and not isinstance(value, bool):
        bits = value.bit_length()
        if bits > 100:
            sign = "-" if value < 0 else ""
            return f"{sign}<an integer of {bits} bits>"
    text = repr(value)
    return text if len(text) <= _SHOWN_DIGITS + 10 else text[:_SHOWN_DIGITS] + "..."


def check_int(field: str, value: object, *, low: int = INT64_MIN, high: int = INT64_MAX) -> int:
    """``value`` as an ``int`` in ``[low, high]``; bools, floats and text are refused.

    NumPy and other integer scalars (anything with ``__index__``) are accepted.
    """
    if isinstance(value, bool):
        index: int | None = None
    else:
        try:
            index = operator.index(value)  # type: ignore[arg-type]
        except TypeError:
            index = None
    if index is None:
        msg = (
            f"{field} got {show_number(value)} of type {type(value).__name__}; "
            f"it must be an integer from {low} to {high}"
        )
        raise InvalidArgumentError(msg)
    if not low <= index <= high:
        msg = (
            f"{field} = {show_number(index)} is out of range; it must be an integer from "
            f"{low} to {high}"
        )
        raise InvalidArgumentError(msg)
    return index


def check_real(field: str, value: object, *, low: float, high: float) -> float:
    """``value`` as a finite ``float`` in ``[low, high]`` (NaN and infinities refused)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = f"{field} got {show_number(value)} of type {type(value).__name__}; give a number"
        raise InvalidArgumentError(msg)
    number = float(value) if not isinstance(value, int) or abs(value) < 2**1000 else math.inf
    if not (math.isfinite(number) and low <= number <= high):
        msg = f"{field} = {show_number(value)} is out of range; give a number from {low} to {high}"
        raise InvalidArgumentError(msg)
    return number
