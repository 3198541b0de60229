"""XGBoost models saved as JSON or in XGBoost's UBJSON encoding.

Both hold the same document; the learner's parameters (objective, features, classes, trees)
become metadata.  The UBJSON reader skips the typed numeric arrays that make up the trees.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, ClassVar

from luminary.registry._formats._types import LIST_LIMIT, ModelInfo, NotThisFormat

__all__ = [
    "looks_like_json_object",
    "looks_like_ubj",
    "parse_xgboost_json",
    "parse_xgboost_ubj",
]


def looks_like_json_object(head: bytes, size: int) -> bool:
    return head.lstrip()[:1] == b"{"


def looks_like_ubj(head: bytes, size: int) -> bool:
    return head[:1] == b"{" and head[1:2] in (b"i", b"U", b"I", b"l", b"L")


def parse_xgboost_json(p: Path, size: int, head: bytes, *, strict: bool) -> ModelInfo:
    try:
        with p.open("rb") as f:
            doc = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"not JSON: {exc}"
        raise NotThisFormat(msg) from None
    return ModelInfo("xgboost-json", metadata=_xgboost_metadata(doc))


def parse_xgboost_ubj(p: Path, size: int, head: bytes, *, strict: bool) -> ModelInfo:
    with p.open("rb") as f:
        data = f.read()
    try:
        doc, end = _Ubj(data).value(0)
    except (IndexError, struct.error, UnicodeDecodeError, RecursionError) as exc:
        msg = f"not UBJSON: {type(exc).__name__} {exc}"
        raise NotThisFormat(msg) from None
    if end != len(data):
        msg = f"UBJSON document ends at byte {end} of {len(data)}"
        raise NotThisFormat(msg)
    return ModelInfo("xgboost-ubj", metadata=_xgboost_metadata(doc))


def _xgboost_metadata(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict) or "learner" not in doc or "version" not in doc:
        msg = "no top-level 'learner' and 'version': not an XGBoost model"
        raise NotThisFormat(msg)
    learner, version = doc["learner"], doc["version"]
    if not isinstance(learner, dict):
        msg = "'learner' is not an object"
        raise NotThisFormat(msg)
    params = learner.get("learner_model_param") or {}
    booster = learner.get("gradient_booster") or {}
    model = booster.get("model") or (booster.get("gbtree") or {}).get("model") or {}
    trees = model.get("trees")
    n_trees: int | float | str | list[float] | None = (
        len(trees) if isinstance(trees, list) else None
    )
    if n_trees is None:
        n_trees = _as_number((model.get("gbtree_model_param") or {}).get("num_trees"))
    objective = learner.get("objective") or {}
    names = learner.get("feature_names") or []
    types = learner.get("feature_types") or []
    return {
        "xgboost_version": ".".join(str(v) for v in version)
        if isinstance(version, list)
        else str(version),
        "booster": booster.get("name"),
        "objective": objective.get("name") if isinstance(objective, dict) else objective,
        "num_feature": _as_number(params.get("num_feature")),
        "num_class": _as_number(params.get("num_class")),
        "num_target": _as_number(params.get("num_target")),
        "base_score": _as_number(params.get("base_score")),
        "num_trees": n_trees,
        "feature_names": [str(n) for n in names][:LIST_LIMIT],
        "feature_types": [str(t) for t in types][:LIST_LIMIT],
        "attributes": {str(k): str(v) for k, v in (learner.get("attributes") or {}).items()},
    }


def _as_number(value: Any) -> int | float | str | list[float] | None:
    """XGBoost writes learner parameters as strings ("10", "5E-1", "[1E-1,2E-1]" for a vector)."""
    if value is None or isinstance(value, int | float):
        return value
    text = str(value).strip()
    if text.startswith("[") or "," in text:
        try:
            return [float(v) for v in text.strip("[]").split(",") if v.strip()]
        except ValueError:
            return text
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


class _Ubj:
    """A UBJSON reader for XGBoost's encoding (big-endian; ``$`` typed and ``#`` counted arrays).

    Typed numeric arrays (tree node arrays, millions of entries) are skipped, not decoded: the
    metadata only needs their length, so they come back as ``range`` objects of that length.
    """

    _INTS: ClassVar[dict[str, str]] = {"i": ">b", "U": ">B", "I": ">h", "l": ">i", "L": ">q"}
    _FIXED: ClassVar[dict[str, str]] = {**_INTS, "d": ">f", "D": ">d", "C": ">c"}

    def __init__(self, data: bytes) -> None:
        self.data = data

    def _marker(self, pos: int) -> tuple[str, int]:
        while self.data[pos : pos + 1] == b"N":  # no-op marker
            pos += 1
        return chr(self.data[pos]), pos + 1

    def _fixed(self, marker: str, pos: int) -> tuple[Any, int]:
        fmt = self._FIXED[marker]
        (v,) = struct.unpack_from(fmt, self.data, pos)
        return v, pos + struct.calcsize(fmt)

    def _length(self, pos: int) -> tuple[int, int]:
        marker, pos = self._marker(pos)
        if marker not in self._INTS:
            msg = f"expected an integer length marker, got {marker!r}"
            raise struct.error(msg)
        n, pos = self._fixed(marker, pos)
        if n < 0:
            msg = f"negative length {n} at byte {pos}"
            raise struct.error(msg)
        return int(n), pos

    def _string(self, pos: int) -> tuple[str, int]:
        n, pos = self._length(pos)
        if pos + n > len(self.data):
            msg = f"string of {n} bytes at byte {pos} runs past the end"
            raise IndexError(msg)
        return self.data[pos : pos + n].decode("utf-8"), pos + n

    def value(self, pos: int) -> tuple[Any, int]:
        marker, pos = self._marker(pos)
        return self._typed(marker, pos)

    def _typed(self, marker: str, pos: int) -> tuple[Any, int]:
        if marker == "{":
            return self._object(pos)
        if marker == "[":
            return self._array(pos)
        if marker == "S":
            return self._string(pos)
        if marker == "H":  # high-precision number, a decimal string
            text, pos = self._string(pos)
            return text, pos
        if marker in ("Z", "T", "F"):
            return {"Z": None, "T": True, "F": False}[marker], pos
        if marker in self._FIXED:
            v, pos = self._fixed(marker, pos)
            return (v.decode("latin-1") if marker == "C" else v), pos
        msg = f"unknown UBJSON marker {marker!r} at byte {pos - 1}"
        raise struct.error(msg)

    def _container_header(self, pos: int) -> tuple[str | None, int | None, int]:
        typ: str | None = None
        count: int | None = None
        if self.data[pos : pos + 1] == b"$":
            typ, pos = chr(self.data[pos + 1]), pos + 2
        if self.data[pos : pos + 1] == b"#":
            count, pos = self._length(pos + 1)
        elif typ is not None:
            msg = f"typed container without a count at byte {pos}"
            raise struct.error(msg)
        return typ, count, pos

    def _array(self, pos: int) -> tuple[Any, int]:
        typ, count, pos = self._container_header(pos)
        if typ is not None and typ in self._FIXED and count is not None:
            end = pos + count * struct.calcsize(self._FIXED[typ])
            if end > len(self.data):
                msg = f"typed array of {count} runs past the end"
                raise IndexError(msg)
            return range(count), end
        items: list[Any] = []
        if count is not None:
            for _ in range(count):
                v, pos = self._typed(typ, pos) if typ else self.value(pos)
                items.append(v)
            return items, pos
        while True:
            marker, nxt = self._marker(pos)
            if marker == "]":
                return items, nxt
            v, pos = self._typed(marker, nxt)
            items.append(v)

    def _object(self, pos: int) -> tuple[Any, int]:
        typ, count, pos = self._container_header(pos)
        out: dict[str, Any] = {}
        while count is None or len(out) < count:
            if count is None and self.data[pos : pos + 1] == b"}":
                return out, pos + 1
            key, pos = self._string(pos)
            out[key], pos = self._typed(typ, pos) if typ else self.value(pos)
        return out, pos
