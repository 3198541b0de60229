"""Checks and encodings shared by every store implementation (no I/O here)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from luminary.errors import InvalidArgumentError
from luminary.registry.models import check_name
from luminary.store.models import ParamValue

__all__ = [
    "check_key",
    "check_project_name",
    "check_relative_path",
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


def check_relative_path(path: str) -> str:
    """An artifact name: relative, '/'-separated, no '..', no empty or hidden traversal."""
    parts = path.split("/")
    if (
        not path
        or len(path) > 1024
        or path.startswith("/")
        or "\\" in path
        or "\x00" in path
        or any(p in ("", ".", "..") for p in parts)
    ):
        msg = (
            f"artifact path {path!r} is not valid; use a relative path of '/'-separated names "
            "without '.', '..', empty parts or backslashes (e.g. 'model/weights.npz')"
        )
        raise InvalidArgumentError(msg)
    return path


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
