"""The JSON shapes that carry Store values over HTTP, shared by the server and the REST client.

No I/O here: values to JSON-ready objects and back, exactly (params keep their type, NaN and
infinities survive, datetimes stay aware UTC). JSON is written by orjson when it is installed
(several times faster on metric batches), else by the standard library; both give the same
bytes' meaning.

- Params travel as ``{key: [type, text]}`` (the storage encoding), so ``3`` stays an int and
  ``nan`` a float.
- Floats that JSON cannot hold travel as the strings ``"NaN"``, ``"Infinity"``,
  ``"-Infinity"``; in a metric batch NaN travels as ``null``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from luminary._bounds import INT64_MAX, INT64_MIN
from luminary.datasets.models import Dataset, DatasetVersion
from luminary.errors import InvalidArgumentError
from luminary.registry.models import AliasMove, Event, Model, ModelVersion
from luminary.tracking import decode_param, encode_param
from luminary.tracking.models import (
    ArtifactEntry,
    MetricHistory,
    ParamValue,
    Project,
    Run,
    RunStatus,
    json_float,
)

try:
    import orjson

    def dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

    def loads(data: bytes | str) -> Any:
        return orjson.loads(data)

except ImportError:  # pragma: no cover - orjson is optional

    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()

    def loads(data: bytes | str) -> Any:
        return json.loads(data)


def dumps_request(obj: Any) -> bytes:
    """:func:`dumps` for a request the client sends: what JSON cannot carry is bad input."""
    try:
        return dumps(obj)
    except (TypeError, ValueError) as exc:  # orjson.JSONEncodeError is a TypeError
        msg = (
            f"the request cannot be sent as JSON ({exc}); integers must be from {INT64_MIN} to "
            f"{INT64_MAX} and text must be valid Unicode"
        )
        raise InvalidArgumentError(msg) from None


_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def to_float(value: Any) -> float:
    """A float from JSON: a number, ``null`` (NaN) or one of the special strings."""
    if value is None:
        return math.nan
    if isinstance(value, str):
        return _SPECIAL[value]
    return float(value)


def point_value(value: float | None) -> float | str | None:
    """A metric point's value for a batch: NaN as null, infinities as strings."""
    if value is None or value != value:
        return None
    if value in (math.inf, -math.inf):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _must_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


# -- params and floats ---------------------------------------------------------------------
def enc_params(params: Mapping[str, ParamValue]) -> dict[str, list[str]]:
    return {k: list(encode_param(k, v)[:2]) for k, v in params.items()}


_PARAM_TYPES = frozenset({"str", "int", "float", "bool", "null", "json"})


def dec_params(data: Mapping[str, Any]) -> dict[str, ParamValue]:
    """Params from the wire, ``{key: [type, text]}``; anything else is a clear 400."""
    out: dict[str, ParamValue] = {}
    for key, value in data.items():
        ok = (
            isinstance(value, (list, tuple))
            and len(value) == 2
            and value[0] in _PARAM_TYPES
            and isinstance(value[1], str)
        )
        if ok:
            try:
                out[key] = decode_param(value[0], value[1])
                continue
            except ValueError:
                pass
        msg = (
            f"param {key!r} is sent as {value!r}; on the wire a param is [type, text] with type "
            f"one of {', '.join(sorted(_PARAM_TYPES))} and text that parses as that type"
        )
        raise InvalidArgumentError(msg)
    return out


def enc_floats(values: Mapping[str, float | None]) -> dict[str, float | str]:
    return {k: json_float(math.nan if v is None else v) for k, v in values.items()}


def dec_floats(data: Mapping[str, Any]) -> dict[str, float]:
    return {k: to_float(v) for k, v in data.items()}


# -- tracking ------------------------------------------------------------------------------
def enc_project(p: Project) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "description": p.description,
        "created_at": _time(p.created_at),
    }


def dec_project(d: Mapping[str, Any]) -> Project:
    return Project(d["id"], d["name"], d["description"], _must_time(d["created_at"]))


def enc_run(r: Run) -> dict[str, Any]:
    return {
        "id": r.id,
        "project": r.project,
        "name": r.name,
        "status": r.status.value,
        "parent_id": r.parent_id,
        "start_time": _time(r.start_time),
        "end_time": _time(r.end_time),
        "heartbeat_at": _time(r.heartbeat_at),
        "params": enc_params(r.params),
        "tags": dict(r.tags),
        "metrics": enc_floats(r.metrics),
    }


def dec_run(d: Mapping[str, Any]) -> Run:
    return Run(
        id=d["id"],
        project=d["project"],
        name=d["name"],
        status=RunStatus(d["status"]),
        parent_id=d["parent_id"],
        start_time=_must_time(d["start_time"]),
        end_time=_parse_time(d["end_time"]),
        heartbeat_at=_parse_time(d["heartbeat_at"]),
        params=dec_params(d["params"]),
        tags=dict(d["tags"]),
        metrics=dec_floats(d["metrics"]),
    )


def enc_history(h: MetricHistory) -> dict[str, Any]:
    return {
        "run_id": h.run_id,
        "key": h.key,
        "steps": h.steps,
        "timestamps_ms": h.timestamps_ms,
        "values": [point_value(v) for v in h.values],
    }


def dec_history(d: Mapping[str, Any]) -> MetricHistory:
    return MetricHistory(
        run_id=d["run_id"],
        key=d["key"],
        steps=list(d["steps"]),
        timestamps_ms=list(d["timestamps_ms"]),
        values=[to_float(v) for v in d["values"]],
    )


def enc_artifact(e: ArtifactEntry) -> list[Any]:
    return [e.path, e.digest, e.size]


def dec_artifact(d: Any) -> ArtifactEntry:
    return ArtifactEntry(str(d[0]), str(d[1]), int(d[2]))


# -- registry ------------------------------------------------------------------------------
def enc_model(m: Model) -> dict[str, Any]:
    return m.to_dict()


def dec_model(d: Mapping[str, Any]) -> Model:
    return Model(
        id=d["id"],
        name=d["name"],
        project=d["project"],
        description=d["description"],
        created_at=_must_time(d["created_at"]),
        latest_version=d["latest_version"],
        aliases=dict(d["aliases"]),
    )


def enc_version(v: ModelVersion) -> dict[str, Any]:
    out = replace(v, metrics={}).to_dict()
    out["metrics"] = enc_floats(v.metrics)
    return out


def dec_version(d: Mapping[str, Any]) -> ModelVersion:
    return ModelVersion(
        id=d["id"],
        model=d["model"],
        version=d["version"],
        digest=d["digest"],
        size=d["size"],
        format=d["format"],
        filename=d["filename"],
        signature=dict(d["signature"]),
        metadata=dict(d["metadata"]),
        source_run_id=d["source_run_id"],
        metrics=dec_floats(d["metrics"]),
        parent=d["parent"],
        description=d["description"],
        created_at=_must_time(d["created_at"]),
        created_by=d["created_by"],
        aliases=tuple(d["aliases"]),
    )


def enc_move(m: AliasMove) -> dict[str, Any]:
    return m.to_dict()


def dec_move(d: Mapping[str, Any]) -> AliasMove:
    return AliasMove(
        model=d["model"],
        alias=d["alias"],
        from_version=d["from_version"],
        to_version=d["to_version"],
        actor=d["actor"],
        at=_must_time(d["at"]),
    )


def enc_event(e: Event) -> dict[str, Any]:
    return e.to_dict()


def dec_event(d: Mapping[str, Any]) -> Event:
    return Event(
        seq=d["seq"],
        kind=d["kind"],
        subject=d["subject"],
        payload=dict(d["payload"]),
        actor=d["actor"],
        at=_must_time(d["at"]),
    )


# -- datasets ------------------------------------------------------------------------------
def enc_dataset(d: Dataset) -> dict[str, Any]:
    return d.to_dict()


def dec_dataset(d: Mapping[str, Any]) -> Dataset:
    return Dataset(
        id=d["id"],
        name=d["name"],
        project=d["project"],
        description=d["description"],
        created_at=_must_time(d["created_at"]),
        latest_version=d["latest_version"],
    )


def enc_dataset_version(v: DatasetVersion) -> dict[str, Any]:
    return v.to_dict()


def dec_dataset_version(d: Mapping[str, Any]) -> DatasetVersion:
    return DatasetVersion(
        id=d["id"],
        dataset=d["dataset"],
        version=d["version"],
        mode=d["mode"],
        root=d["root"],
        manifest_digest=d["manifest_digest"],
        schema_digest=d["schema_digest"],
        file_count=d["file_count"],
        total_bytes=d["total_bytes"],
        message=d["message"],
        created_at=_must_time(d["created_at"]),
        created_by=d["created_by"],
    )
