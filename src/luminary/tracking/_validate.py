"""Checks and encodings shared by every store implementation (no I/O here)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from luminary._bounds import INT64_MAX, INT64_MIN, check_int, show_number
from luminary.errors import InvalidArgumentError, NotFoundError
from luminary.names import check_name, check_relative_path
from luminary.storage.blobs import check_digest
from luminary.tracking.models import ArtifactEntry, ParamValue

if TYPE_CHECKING:
    from luminary.tracking._base import MetricPoint

__all__ = [
    "check_artifacts",
    "check_int",
    "check_key",
    "check_points",
    "check_project_name",
    "decode_param",
    "encode_param",
    "metric_value",
]

_KEY = re.compile(r"^[A-Za-z0-9_\-./: ]{1,250}$")
KEY_RULE = "1-250 characters from letters, digits, '_', '-', '.', '/', ':' and space"


def check_key(kind: str, key: object) -> str:
    if not isinstance(key, str) or not _KEY.match(key) or key != key.strip():
        msg = (
            f"{kind} key {key!r} is not valid; a key is {KEY_RULE}, "
            "without leading or trailing space"
        )
        raise InvalidArgumentError(msg)
    return key


def check_project_name(name: object) -> str:
    return check_name("project", name)


def check_artifacts(
    entries: Sequence[ArtifactEntry], blob_size: Callable[[str], int]
) -> list[ArtifactEntry]:
    """Checks an artifact manifest before it is written: each path (:func:`check_relative_path`),
    each digest well formed and present in the blob store, and each size the blob's size.

    ``blob_size`` answers a blob's size or raises :class:`~luminary.errors.NotFoundError`; it is
    called once per distinct digest.
    """
    sizes: dict[str, int] = {}
    for e in entries:
        check_relative_path(e.path)
        check_digest(e.digest)
        size = check_int(f"size of artifact {e.path!r}", e.size, low=0)
        if e.digest not in sizes:
            try:
                sizes[e.digest] = blob_size(e.digest)
            except NotFoundError:
                msg = (
                    f"artifact {e.path!r} names blob {e.digest}, which is not in the blob store; "
                    "upload the file first (log_artifact does both)"
                )
                raise InvalidArgumentError(msg) from None
        if sizes[e.digest] != size:
            msg = (
                f"artifact {e.path!r} says it is {size} bytes, but blob {e.digest} holds "
                f"{sizes[e.digest]}; give the blob's size"
            )
            raise InvalidArgumentError(msg)
    return list(entries)


def check_points(points: Sequence[MetricPoint]) -> None:
    """Metric steps and timestamps fit the database's 64-bit integers."""
    for p in points:
        if not (INT64_MIN <= p[1] <= INT64_MAX and INT64_MIN <= p[2] <= INT64_MAX):
            check_int("metric step", p[1])
            check_int("metric timestamp (ms)", p[2])


def metric_value(key: str, value: object) -> float:
    """A metric value as a float; NaN and infinities are kept."""
    if isinstance(value, float):
        return value
    if isinstance(value, (str, bytes, bytearray, complex)) or not hasattr(value, "__float__"):
        msg = (
            f"metric {key!r} got {value!r} of type {type(value).__name__}; a metric value must "
            "be a real number (int, float, NumPy or PyTorch scalar); log text as a tag or param"
        )
        raise InvalidArgumentError(msg)
    try:
        return float(value)  # type: ignore[arg-type,unused-ignore]
    except (TypeError, ValueError, OverflowError) as exc:
        msg = (
            f"metric {key!r} got {value!r}, which is not a single real number ({exc}); "
            "a metric value must be a real number"
        )
        raise InvalidArgumentError(msg) from exc


def encode_param(key: str, value: ParamValue | Any) -> tuple[str, str, float | None]:
    """(value_type, value_text, value_num) for storage."""
    check_key("param", key)
    if value is None:
        return "null", "null", None
    if isinstance(value, bool):
        return "bool", "true" if value else "false", float(value)
    if isinstance(value, int):
        if value.bit_length() > 1000:  # beyond a float, and soon beyond str()
            msg = (
                f"param {key!r} got {show_number(value)}, an integer too large to store; a "
                "param integer has at most 1000 bits (store a larger number as a string)"
            )
            raise InvalidArgumentError(msg)
        return "int", str(value), float(value)
    if isinstance(value, float):
        return "float", repr(value), None if math.isnan(value) else value
    if isinstance(value, str):
        return "str", value, None
    if isinstance(value, (list, tuple, dict)):
        try:
            return "json", json.dumps(value, sort_keys=True, allow_nan=True), None
        except (TypeError, ValueError) as exc:
            msg = f"param {key!r} holds {value!r}, which is not JSON-serialisable ({exc})"
            raise InvalidArgumentError(msg) from exc
    item: Any = getattr(value, "item", None)  # NumPy scalar
    if callable(item):
        return encode_param(key, item())
    msg = (
        f"param {key!r} got {value!r} of type {type(value).__name__}; a param is a string, "
        "number, bool, None, or a JSON list/dict"
    )
    raise InvalidArgumentError(msg)


def decode_param(value_type: str, text: str) -> ParamValue:
    if value_type == "str":
        return text
    if value_type == "int":
        return int(text)
    if value_type == "float":
        return float(text)
    if value_type == "bool":
        return text == "true"
    if value_type == "null":
        return None
    result: Any = json.loads(text)
    return result  # type: ignore[no-any-return]


def check_tags(tags: Mapping[str, object]) -> dict[str, str]:
    out = {}
    for key, value in tags.items():
        check_key("tag", key)
        if not isinstance(value, (str, int, float, bool)):
            msg = f"tag {key!r} got {value!r} of type {type(value).__name__}; a tag value is text"
            raise InvalidArgumentError(msg)
        out[key] = str(value)
    return out
