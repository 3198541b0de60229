"""Values of hyperparameter studies as the store keeps them.

A study and its trials are stored in Optuna's vocabulary (directions, trial states, params
as internal floats with their distribution's JSON, intermediate values by step, user and
system attributes), but nothing here imports Optuna: the adapter in ``storage.py`` turns
these records into Optuna's ``FrozenTrial`` and back. Every record is a frozen dataclass;
``to_dict``/``from_dict`` are the wire form.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from luminary.errors import InvalidArgumentError

__all__ = [
    "DIRECTIONS",
    "FINISHED_STATES",
    "TRIAL_STATES",
    "ParamRecord",
    "StudyRecord",
    "StudySummary",
    "TrialPatch",
    "TrialRecord",
    "run_status_of",
]

#: Optuna's trial states, as stored (``optuna.trial.TrialState`` names, lower case).
TRIAL_STATES = ("running", "complete", "pruned", "fail", "waiting")
FINISHED_STATES = ("complete", "pruned", "fail")
DIRECTIONS = ("minimize", "maximize")

#: The status of a trial's run for each trial state (the run says ``finished`` for a pruned
#: trial, whose state the tag ``tune.state`` keeps).
_RUN_STATUS = {
    "running": "running",
    "complete": "finished",
    "pruned": "finished",
    "fail": "failed",
    "waiting": "queued",
}


def run_status_of(state: str) -> str:
    return _RUN_STATUS[check_state(state)]


def check_state(state: object) -> str:
    if state not in TRIAL_STATES:
        msg = f"trial state {state!r} is not valid; use one of {', '.join(TRIAL_STATES)}"
        raise InvalidArgumentError(msg)
    return str(state)


def check_directions(directions: Sequence[str]) -> list[str]:
    out = [str(d).lower() for d in directions]
    if not out or any(d not in DIRECTIONS for d in out):
        msg = (
            f"study directions {list(directions)!r} are not valid; give one or more of "
            "'minimize' and 'maximize'"
        )
        raise InvalidArgumentError(msg)
    return out


def check_values(values: Sequence[float] | None, n: int | None = None) -> list[float] | None:
    """Objective values: finite or infinite floats (Optuna stores ±inf), never NaN."""
    if values is None:
        return None
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            msg = f"objective value {v!r} is not a number"
            raise InvalidArgumentError(msg)
        f = float(v)
        if math.isnan(f):
            msg = "an objective value is NaN; a trial whose objective is NaN fails instead"
            raise InvalidArgumentError(msg)
        out.append(f)
    if n is not None and len(out) != n:
        msg = f"the study has {n} objective(s) but {len(out)} value(s) were given"
        raise InvalidArgumentError(msg)
    return out


@dataclass(frozen=True)
class ParamRecord:
    """One suggested parameter: Optuna's internal float, its distribution as Optuna's JSON,
    and its external value (what the objective saw; also the run's param)."""

    internal: float
    distribution: str
    external: Any = None

    def to_list(self) -> list[Any]:
        return [self.internal, self.distribution, self.external]

    @classmethod
    def from_list(cls, raw: Sequence[Any]) -> ParamRecord:
        return cls(float(raw[0]), str(raw[1]), raw[2] if len(raw) > 2 else None)


@dataclass(frozen=True)
class StudyRecord:
    """A study: its Optuna id (an integer, as Optuna's API needs), name, project, the run
    that holds its trials' runs, directions and attributes."""

    id: int
    name: str
    project: str
    run_id: str
    directions: tuple[str, ...]
    user_attrs: Mapping[str, Any] = field(default_factory=dict)
    system_attrs: Mapping[str, Any] = field(default_factory=dict)
    created_ms: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "project": self.project,
            "run_id": self.run_id,
            "directions": list(self.directions),
            "user_attrs": dict(self.user_attrs),
            "system_attrs": dict(self.system_attrs),
            "created_ms": self.created_ms,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> StudyRecord:
        return cls(
            id=int(raw["id"]),
            name=str(raw["name"]),
            project=str(raw["project"]),
            run_id=str(raw["run_id"]),
            directions=tuple(raw["directions"]),
            user_attrs=dict(raw.get("user_attrs") or {}),
            system_attrs=dict(raw.get("system_attrs") or {}),
            created_ms=int(raw.get("created_ms") or 0),
        )


@dataclass(frozen=True)
class StudySummary:
    """A study with its trial counts by state and its best value(s) (single objective:
    the best complete trial's number and value)."""

    study: StudyRecord
    counts: Mapping[str, int]
    best_number: int | None = None
    best_value: float | None = None
    last_ms: int | None = None

    @property
    def n_trials(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study.to_dict(),
            "counts": dict(self.counts),
            "best_number": self.best_number,
            "best_value": None if self.best_value is None else _wire_float(self.best_value),
            "last_ms": self.last_ms,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> StudySummary:
        return cls(
            study=StudyRecord.from_dict(raw["study"]),
            counts={str(k): int(v) for k, v in raw["counts"].items()},
            best_number=raw.get("best_number"),
            best_value=None if raw.get("best_value") is None else _float(raw["best_value"]),
            last_ms=raw.get("last_ms"),
        )


@dataclass(frozen=True)
class TrialRecord:
    """A trial as stored: Optuna's integer id and number, its run, state, values, times,
    params, intermediate values by step, attributes and last heartbeat."""

    id: int
    study_id: int
    number: int
    run_id: str
    state: str
    values: tuple[float, ...] | None = None
    start_ms: int | None = None
    complete_ms: int | None = None
    params: Mapping[str, ParamRecord] = field(default_factory=dict)
    intermediate: Mapping[int, float] = field(default_factory=dict)
    user_attrs: Mapping[str, Any] = field(default_factory=dict)
    system_attrs: Mapping[str, Any] = field(default_factory=dict)
    heartbeat_ms: int | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "study_id": self.study_id,
            "number": self.number,
            "run_id": self.run_id,
            "state": self.state,
            "values": None if self.values is None else [_wire_float(v) for v in self.values],
            "start_ms": self.start_ms,
            "complete_ms": self.complete_ms,
            "params": {k: p.to_list() for k, p in self.params.items()},
            # JSON keys are text, and intermediate values may be ±inf or NaN
            "intermediate": [[s, _wire_float(v)] for s, v in self.intermediate.items()],
            "user_attrs": dict(self.user_attrs),
            "system_attrs": dict(self.system_attrs),
            "heartbeat_ms": self.heartbeat_ms,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TrialRecord:
        values = raw.get("values")
        return cls(
            id=int(raw["id"]),
            study_id=int(raw["study_id"]),
            number=int(raw["number"]),
            run_id=str(raw["run_id"]),
            state=check_state(raw["state"]),
            values=None if values is None else tuple(_float(v) for v in values),
            start_ms=raw.get("start_ms"),
            complete_ms=raw.get("complete_ms"),
            params={k: ParamRecord.from_list(p) for k, p in (raw.get("params") or {}).items()},
            intermediate={int(s): _float(v) for s, v in raw.get("intermediate") or []},
            user_attrs=dict(raw.get("user_attrs") or {}),
            system_attrs=dict(raw.get("system_attrs") or {}),
            heartbeat_ms=raw.get("heartbeat_ms"),
        )


@dataclass(frozen=True)
class TrialPatch:
    """Changes to one trial, applied in one transaction: new params, intermediate values,
    attributes (merged key by key), and optionally a new state with its values.

    ``state="running"`` claims a waiting trial; the store answers whether the claim won.
    A patch to a finished trial is refused (``InvalidStateError``), except an empty one."""

    params: Mapping[str, ParamRecord] = field(default_factory=dict)
    intermediate: Mapping[int, float] = field(default_factory=dict)
    user_attrs: Mapping[str, Any] = field(default_factory=dict)
    system_attrs: Mapping[str, Any] = field(default_factory=dict)
    state: str | None = None
    values: tuple[float, ...] | None = None

    def __bool__(self) -> bool:
        return bool(
            self.params
            or self.intermediate
            or self.user_attrs
            or self.system_attrs
            or self.state is not None
        )

    def merged(self, later: TrialPatch) -> TrialPatch:
        """This patch followed by ``later`` (the write-behind buffer folds patches)."""
        return TrialPatch(
            params={**self.params, **later.params},
            intermediate={**self.intermediate, **later.intermediate},
            user_attrs={**self.user_attrs, **later.user_attrs},
            system_attrs={**self.system_attrs, **later.system_attrs},
            state=later.state if later.state is not None else self.state,
            values=later.values if later.state is not None else self.values,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": {k: p.to_list() for k, p in self.params.items()},
            "intermediate": [[s, _wire_float(v)] for s, v in self.intermediate.items()],
            "user_attrs": dict(self.user_attrs),
            "system_attrs": dict(self.system_attrs),
            "state": self.state,
            "values": None if self.values is None else [_wire_float(v) for v in self.values],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TrialPatch:
        values = raw.get("values")
        state = raw.get("state")
        return cls(
            params={k: ParamRecord.from_list(p) for k, p in (raw.get("params") or {}).items()},
            intermediate={int(s): _float(v) for s, v in raw.get("intermediate") or []},
            user_attrs=dict(raw.get("user_attrs") or {}),
            system_attrs=dict(raw.get("system_attrs") or {}),
            state=None if state is None else check_state(state),
            values=None if values is None else tuple(_float(v) for v in values),
        )


def _wire_float(v: float) -> float | str:
    """JSON has no inf or NaN: they travel as text."""
    return v if math.isfinite(v) else repr(float(v))


def _float(v: Any) -> float:
    if isinstance(v, str):
        if v not in ("inf", "-inf", "nan"):
            msg = f"{v!r} is not a number"
            raise InvalidArgumentError(msg)
        return float(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        msg = f"{v!r} is not a number"
        raise InvalidArgumentError(msg)
    return float(v)
