"""The JSON shapes that carry Store values over HTTP, shared by the server and the REST client.

No I/O here: values to JSON-ready objects and back, exactly (params keep their type, NaN and
infinities survive, datetimes stay aware UTC). JSON is written by orjson when it is installed
(several times faster on metric batches), else by the standard library; both give the same
bytes' meaning.

- Params travel as ``{key: [type, text]}`` (the storage encoding), so ``3`` stays an int and
  ``nan`` a float.
- Floats that JSON cannot hold travel as the strings ``"NaN"``, ``"Infinity"``,
  ``"-Infinity"``; in a metric batch or history NaN travels as ``null``.
- Compute's log chunks carry their bytes as base64 text (chunks are at most 64 KiB, so the
  third more on the wire buys one JSON shape for every call).
- Each value class has one :class:`Codec`, declared from its dataclass fields with a
  :class:`Conv` only where a field differs from its type's default (``RUN``, ``VERSION``, …);
  ``enc_*`` and ``dec_*`` are its two directions.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from enum import Enum
from operator import attrgetter
from types import UnionType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, Union, get_args, get_origin, get_type_hints

from luminary._bounds import INT64_MAX, INT64_MIN
from luminary.compute import ProjectShare, UsageSample
from luminary.compute.models import (
    Agent,
    Job,
    JobSpec,
    LogChunk,
    NodePlacement,
    Pool,
    Quota,
    Resources,
    Signals,
    TaskReport,
)
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
    json_float,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

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


# -- codecs --------------------------------------------------------------------------------
def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Conv:
    """How one field's value travels: ``encode`` makes it JSON-ready, ``decode`` reads it back."""

    encode: Callable[[Any], Any] = _same
    decode: Callable[[Any], Any] = _same


_SAME = Conv()
PARAMS = Conv(enc_params, dec_params)
FLOATS = Conv(enc_floats, dec_floats)
POINTS = Conv(
    lambda values: [point_value(v) for v in values],
    lambda values: [to_float(v) for v in values],
)
TIME = Conv(datetime.isoformat, datetime.fromisoformat)
MAYBE_TIME = Conv(_time, _parse_time)


def _default(hint: Any) -> Conv:
    """A field's conversion from its type: datetimes as ISO text, enums as their value, tuples
    as lists, dicts copied both ways and lists on the way in; anything else is already JSON."""
    args = get_args(hint)
    optional = get_origin(hint) in (Union, UnionType) and type(None) in args
    if optional:
        rest = [a for a in args if a is not type(None)]
        hint = rest[0] if len(rest) == 1 else Any
    origin = get_origin(hint) or hint
    if origin is datetime:
        return MAYBE_TIME if optional else TIME
    conv = _SAME
    if isinstance(origin, type) and issubclass(origin, Enum):
        conv = Conv(attrgetter("value"), origin)
    elif origin in (dict, Mapping):
        conv = Conv(dict, dict)
    elif origin is list:
        conv = Conv(_same, list)
    elif origin is tuple:
        conv = Conv(list, tuple)
    if optional and conv is not _SAME:
        msg = f"no default wire shape for {hint!r} | None; give the field a Conv"
        raise TypeError(msg)
    return conv


class Codec(Generic[T]):
    """One value class's wire shape, declared once: a JSON object with a key per dataclass
    field, in field order (or, with ``as_list``, a list of the field values), each converted
    by its type's default or by the :class:`Conv` given for it by name. ``derived`` names
    properties written first on the way out and ignored on the way in.

    ``encode`` and ``decode`` are compiled once, when the codec is made, into plain functions
    that read each field by name, as a hand-written pair would: no reflection per call. A
    missing key raises :class:`KeyError`; a field's conversion raises what it raises.
    """

    def __init__(
        self,
        cls: type[T],
        *,
        as_list: bool = False,
        derived: tuple[str, ...] = (),
        **overrides: Conv,
    ) -> None:
        hints = get_type_hints(cls)
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            msg = f"{cls.__name__} has no field named {', '.join(unknown)}"
            raise TypeError(msg)
        convs = {n: overrides[n] if n in overrides else _default(hints[n]) for n in names}
        scope: dict[str, Any] = {"_cls": cls}
        out: list[tuple[str, str]] = [(n, f"o.{n}") for n in derived]
        args: list[str] = []
        for i, name in enumerate(names):
            conv = convs[name]
            scope[f"_e_{name}"], scope[f"_d_{name}"] = conv.encode, conv.decode
            got = f"o.{name}"
            out.append((name, got if conv.encode is _same else f"_e_{name}({got})"))
            key = f"d[{i}]" if as_list else f"d[{name!r}]"
            args.append(key if conv.decode is _same else f"_d_{name}({key})")
        if as_list:
            shape = "[" + ", ".join(expr for _, expr in out) + "]"
        else:
            shape = "{" + ", ".join(f"{name!r}: {expr}" for name, expr in out) + "}"
        source = (
            f"def encode(o):\n    return {shape}\n"
            f"def decode(d):\n    return _cls({', '.join(args)})\n"
        )
        exec(source, scope)
        self.cls = cls
        self.encode: Callable[[T], Any] = scope["encode"]
        self.decode: Callable[[Any], T] = scope["decode"]
        for fn in (self.encode, self.decode):
            fn.__qualname__ = f"{fn.__name__}_{cls.__name__}"


# -- tracking ------------------------------------------------------------------------------
PROJECT = Codec(Project)
RUN = Codec(Run, params=PARAMS, metrics=FLOATS)
HISTORY = Codec(MetricHistory, values=POINTS)
ARTIFACT = Codec(
    ArtifactEntry,
    as_list=True,
    path=Conv(decode=str),
    digest=Conv(decode=str),
    size=Conv(decode=int),
)

# -- registry ------------------------------------------------------------------------------
MODEL = Codec(Model)
VERSION = Codec(ModelVersion, derived=("ref",), metrics=FLOATS)
MOVE = Codec(AliasMove)
EVENT = Codec(Event)

# -- datasets ------------------------------------------------------------------------------
DATASET = Codec(Dataset)
DATASET_VERSION = Codec(DatasetVersion, derived=("ref",))


# -- compute -------------------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    """Bytes from base64 text; anything else is a clear 400."""
    try:
        if not isinstance(text, str):
            raise TypeError  # noqa: TRY301 - one message for every bad shape
        return base64.b64decode(text, validate=True)
    except (TypeError, binascii.Error):
        msg = f"log data {str(text)[:40]!r} is not valid; send the chunk's bytes as base64 text"
        raise InvalidArgumentError(msg) from None


RESOURCES = Codec(Resources)
JOB_SPEC = Codec(JobSpec, resources=Conv(RESOURCES.encode, RESOURCES.decode))
NODE_PLACEMENT = Codec(
    NodePlacement,
    devices=Conv(
        lambda devices: [[i, f] for i, f in devices],
        lambda devices: tuple((int(i), float(f)) for i, f in devices),
    ),
)
JOB = Codec(
    Job,
    spec=Conv(JOB_SPEC.encode, JOB_SPEC.decode),
    placement=Conv(
        lambda nodes: [NODE_PLACEMENT.encode(n) for n in nodes],
        lambda nodes: tuple(NODE_PLACEMENT.decode(n) for n in nodes),
    ),
)
POOL = Codec(Pool)
QUOTA = Codec(Quota)
LOG_CHUNK = Codec(LogChunk, as_list=True, data=Conv(_b64, _unb64))
AGENT = Codec(Agent)
SIGNALS = Codec(Signals)
TASK_REPORT = Codec(TaskReport)
PROJECT_SHARE = Codec(ProjectShare)
USAGE_SAMPLE = Codec(UsageSample)

enc_project, dec_project = PROJECT.encode, PROJECT.decode
enc_run, dec_run = RUN.encode, RUN.decode
enc_history, dec_history = HISTORY.encode, HISTORY.decode
enc_artifact, dec_artifact = ARTIFACT.encode, ARTIFACT.decode
enc_model, dec_model = MODEL.encode, MODEL.decode
enc_version, dec_version = VERSION.encode, VERSION.decode
enc_move, dec_move = MOVE.encode, MOVE.decode
enc_event, dec_event = EVENT.encode, EVENT.decode
enc_dataset, dec_dataset = DATASET.encode, DATASET.decode
enc_dataset_version, dec_dataset_version = DATASET_VERSION.encode, DATASET_VERSION.decode
enc_job_spec, dec_job_spec = JOB_SPEC.encode, JOB_SPEC.decode
enc_job, dec_job = JOB.encode, JOB.decode
enc_pool, dec_pool = POOL.encode, POOL.decode
enc_quota, dec_quota = QUOTA.encode, QUOTA.decode
enc_log_chunk, dec_log_chunk = LOG_CHUNK.encode, LOG_CHUNK.decode
enc_agent, dec_agent = AGENT.encode, AGENT.decode
enc_signals, dec_signals = SIGNALS.encode, SIGNALS.decode
enc_task_report, dec_task_report = TASK_REPORT.encode, TASK_REPORT.decode
enc_share, dec_share = PROJECT_SHARE.encode, PROJECT_SHARE.decode
enc_usage, dec_usage = USAGE_SAMPLE.encode, USAGE_SAMPLE.decode
