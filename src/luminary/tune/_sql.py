"""Studies and trials on SQLAlchemy (SQLite or PostgreSQL), each trial written with its run.

One write transaction per call. Trial numbers come from the study row's counter
(``UPDATE … SET next_number = next_number + 1 RETURNING``), which serialises concurrent
creators on the row lock, so numbers are never duplicated; the unique (study, number)
constraint is the backstop. Studies' names, projects and runs never change and are cached.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa

from luminary._clock import now_ms
from luminary.errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    InvalidStateError,
    NotFoundError,
    nearest,
)
from luminary.storage import schema as t
from luminary.storage.engine import RawSession, read_tx, write_tx
from luminary.tracking import ParamValue, Project, Run, RunRows, RunStatus, encode_param
from luminary.tune._base import TuneStore
from luminary.tune.models import (
    FINISHED_STATES,
    ParamRecord,
    StudyRecord,
    StudySummary,
    TrialPatch,
    TrialRecord,
    check_directions,
    check_state,
    check_values,
    run_status_of,
)

__all__ = ["SqlTune", "TrialRunWriter", "metric_names_of"]

_NEXT_NUMBER = (
    "UPDATE tune_studies SET next_number = next_number + 1 WHERE id = ? RETURNING next_number"
)
_INSERT_TRIAL = (
    "INSERT INTO tune_trials (study_id, number, run_id, state, values_json, start_ms,"
    " complete_ms, heartbeat_ms, params, intermediate, user_attrs, system_attrs)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
)
_SELECT_TRIALS = (
    "SELECT id, study_id, number, run_id, state, values_json, start_ms, complete_ms,"
    " heartbeat_ms, params, intermediate, user_attrs, system_attrs FROM tune_trials"
)
_TRIAL_FOR_UPDATE = (
    "SELECT study_id, number, run_id, state, params, intermediate, user_attrs, system_attrs"
    " FROM tune_trials WHERE id = ?"
)
_ANY_RUNNING = "SELECT id FROM tune_trials WHERE study_id = ? AND state = 'running' LIMIT 1"
# A study's run is a container: running while some process beats its trials (set with the
# heartbeat, so a loop of short trials does not flip it per trial), finished when a trial
# ends and none is left running.
_STUDY_RUN_LIVE = "UPDATE runs SET status = 'running', end_ms = NULL, heartbeat_ms = ? WHERE id = ?"
_STUDY_RUN_START = (
    "UPDATE runs SET status = 'running', end_ms = NULL, heartbeat_ms = ?"
    " WHERE id = ? AND status <> 'running'"
)
_STUDY_RUN_IDLE = (
    "UPDATE runs SET status = 'finished', end_ms = ? WHERE id = ? AND status <> 'finished'"
)

#: The metric key of a trial's intermediate values (``trial.report(value, step)``).
INTERMEDIATE_KEY = "intermediate_value"
_METRIC_NAMES_ATTR = "study:metric_names"  # where Optuna keeps set_metric_names()


class TrialRunWriter(Protocol):
    """What tune asks of tracking's SQL part: projects, and a study's run written with the
    study (trials' runs are written on the driver cursor, by :class:`RunRows`)."""

    def ensure_project(self, name: str) -> Project: ...

    def insert_run(
        self,
        conn: sa.Connection,
        proj: Project,
        *,
        name: str | None = None,
        parent_id: str | None = None,
        params: Mapping[str, ParamValue] | None = None,
        tags: Mapping[str, str] | None = None,
        start_ms: int | None = None,
        status: RunStatus = RunStatus.RUNNING,
    ) -> Run: ...

    def write_run_status(
        self, conn: sa.Connection, run_id: str, status: RunStatus, end_ms: int | None = None
    ) -> None: ...


@dataclass(frozen=True)
class _StudyMeta:
    name: str
    project: Project
    run_id: str
    n_objectives: int


def metric_names_of(directions: int, system_attrs: Mapping[str, Any]) -> list[str]:
    """The metric keys of a trial's objective values: the study's metric names where set
    (``study.set_metric_names``), else ``value`` (or ``value_0``, ``value_1``, …)."""
    names = system_attrs.get(_METRIC_NAMES_ATTR)
    if (
        isinstance(names, list)
        and len(names) == directions
        and all(isinstance(n, str) for n in names)
    ):
        return [str(n) for n in names]
    return ["value"] if directions == 1 else [f"value_{i}" for i in range(directions)]


class SqlTune(TuneStore):
    """Tune's part of the SQL store; ``tracking`` writes the trials' runs."""

    def __init__(self, engine: sa.Engine, tracking: TrialRunWriter) -> None:
        self.engine = engine
        self.tracking = tracking
        self.raw = RawSession(engine)
        self._metric_names: dict[tuple[int, int], list[str]] = {}
        self.rows = RunRows(self.raw)
        self._meta: dict[int, _StudyMeta] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the driver connections kept between transactions (before the engine is
        disposed: they are checked out of its pool, so disposing does not close them)."""
        self.raw.close()

    # -- studies ---------------------------------------------------------------------------
    def create_study(self, project: str, name: str, directions: Sequence[str]) -> StudyRecord:
        name = check_study_name(name)
        dirs = check_directions(directions)
        proj = self.tracking.ensure_project(project)
        now = now_ms()
        try:
            with write_tx(self.engine) as conn:
                run = self.tracking.insert_run(
                    conn,
                    proj,
                    name=_run_name(name),
                    tags={"tune.study": name, "tune.role": "study"},
                    status=RunStatus.FINISHED,
                    start_ms=now,
                )
                self.tracking.write_run_status(conn, run.id, RunStatus.FINISHED, now)
                study_id = conn.execute(
                    t.tune_studies.insert().returning(t.tune_studies.c.id),
                    {
                        "project_id": proj.id,
                        "name": name,
                        "run_id": run.id,
                        "directions": json.dumps(dirs),
                        "user_attrs": "{}",
                        "system_attrs": "{}",
                        "next_number": 0,
                        "created_ms": now,
                    },
                ).scalar_one()
        except sa.exc.IntegrityError as exc:
            msg = (
                f"study {name!r} already exists in project {project!r}; load it "
                "(optuna.load_study, or create_study(..., load_if_exists=True)) or choose "
                "another name"
            )
            raise AlreadyExistsError(msg) from exc
        return StudyRecord(
            id=int(study_id),
            name=name,
            project=proj.name,
            run_id=run.id,
            directions=tuple(dirs),
            created_ms=now,
        )

    def get_study(self, project: str, name: str) -> StudyRecord:
        s, p = t.tune_studies.c, t.projects.c
        with read_tx(self.engine) as conn:
            row = conn.execute(
                _select_studies().where(p.name == project).where(s.name == name)
            ).first()
            if row is None:
                names = (
                    conn.execute(
                        sa.select(s.name)
                        .join(t.projects, p.id == s.project_id)
                        .where(p.name == project)
                    )
                    .scalars()
                    .all()
                )
        if row is None:
            msg = f"no study {name!r} in project {project!r}; {nearest(name, names, 'study')}"
            raise NotFoundError(msg)
        return _study(row._mapping)

    def get_study_by_id(self, study_id: int) -> StudyRecord:
        with read_tx(self.engine) as conn:
            row = conn.execute(_select_studies().where(t.tune_studies.c.id == study_id)).first()
        if row is None:
            msg = f"no study with id {study_id}"
            raise NotFoundError(msg)
        return _study(row._mapping)

    def list_studies(self, project: str | None = None) -> list[StudySummary]:
        s, tr = t.tune_studies.c, t.tune_trials.c
        with read_tx(self.engine) as conn:
            q = _select_studies().order_by(s.created_ms.desc())
            if project is not None:
                q = q.where(t.projects.c.name == project)
            studies = [_study(r._mapping) for r in conn.execute(q)]
            if not studies:
                return []
            ids = [x.id for x in studies]
            counts: dict[int, dict[str, int]] = {i: {} for i in ids}
            last: dict[int, int] = {}
            for sid, state, n, at in conn.execute(
                sa.select(
                    tr.study_id,
                    tr.state,
                    sa.func.count(),
                    sa.func.max(sa.func.coalesce(tr.complete_ms, tr.start_ms)),
                )
                .where(tr.study_id.in_(ids))
                .group_by(tr.study_id, tr.state)
            ):
                counts[sid][state] = int(n)
                if at is not None:
                    last[sid] = max(last.get(sid, 0), int(at))
            best: dict[int, tuple[int, float]] = {}
            single = [x.id for x in studies if len(x.directions) == 1]
            for sid, number, values in conn.execute(
                sa.select(tr.study_id, tr.number, tr.values_json)
                .where(tr.study_id.in_(single))
                .where(tr.state == "complete")
            ):
                v = _load_values(values)
                if not v:
                    continue
                study = next(x for x in studies if x.id == sid)
                sign = 1.0 if study.directions[0] == "minimize" else -1.0
                cur = best.get(sid)
                if cur is None or sign * v[0] < sign * cur[1]:
                    best[sid] = (int(number), v[0])
        return [
            StudySummary(
                study=x,
                counts=counts[x.id],
                best_number=best[x.id][0] if x.id in best else None,
                best_value=best[x.id][1] if x.id in best else None,
                last_ms=last.get(x.id),
            )
            for x in studies
        ]

    def delete_study(self, study_id: int) -> None:
        with write_tx(self.engine) as conn:
            self._require_study(conn, study_id)
            conn.execute(t.tune_trials.delete().where(t.tune_trials.c.study_id == study_id))
            conn.execute(t.tune_studies.delete().where(t.tune_studies.c.id == study_id))
        with self._lock:
            self._meta.pop(study_id, None)

    def set_study_attrs(
        self,
        study_id: int,
        user_attrs: Mapping[str, Any] | None = None,
        system_attrs: Mapping[str, Any] | None = None,
    ) -> None:
        s = t.tune_studies.c
        with write_tx(self.engine) as conn:
            row = conn.execute(
                sa.select(s.user_attrs, s.system_attrs).where(s.id == study_id)
            ).first()
            if row is None:
                msg = f"no study with id {study_id}"
                raise NotFoundError(msg)
            values: dict[str, str] = {}
            if user_attrs:
                values["user_attrs"] = _dump_attrs({**json.loads(row.user_attrs), **user_attrs})
            if system_attrs:
                values["system_attrs"] = _dump_attrs(
                    {**json.loads(row.system_attrs), **system_attrs}
                )
            if values:
                conn.execute(t.tune_studies.update().where(s.id == study_id).values(**values))

    # -- trials ----------------------------------------------------------------------------
    def create_trial(
        self,
        study_id: int,
        template: TrialRecord | None = None,
        *,
        run_id: str | None = None,
    ) -> TrialRecord:
        now = now_ms()
        state = "running" if template is None else check_state(template.state)
        values = None
        if template is not None and template.values is not None:
            values = check_values(template.values, len(self.get_study_by_id(study_id).directions))
        meta = self._study_meta(study_id)
        params = dict(template.params) if template is not None else {}
        intermediate = dict(template.intermediate) if template is not None else {}
        start: int | None = (template.start_ms if template is not None else None) or now
        if state == "waiting":  # not started, unless the template says when (Optuna keeps it)
            start = template.start_ms if template is not None else None
        end = None
        if state in FINISHED_STATES:
            end = (template.complete_ms if template is not None else None) or now
        status = RunStatus(run_status_of(state))
        rows, q = self.rows, self.raw.sql
        with self.raw.tx() as cur:
            cur.execute(q(_NEXT_NUMBER), (study_id,))
            got = cur.fetchone()
            if got is None:
                msg = f"no study with id {study_id}"
                raise NotFoundError(msg)
            number = int(got[0]) - 1
            tags = {"tune.study": meta.name, "tune.trial": str(number), "tune.state": state}
            adopted = run_id is not None
            if run_id is None:
                run_id = rows.insert_run(
                    cur,
                    project_id=meta.project.id,
                    name=_run_name(f"{meta.name} #{number}"),
                    parent_id=meta.run_id,
                    status=status,
                    start_ms=start or now,
                    tags=tags,
                )
            else:
                run_id = self._adopt_run(cur, run_id, meta)
                rows.set_tags(cur, run_id, tags)
            if status.is_terminal or adopted:
                rows.set_status(cur, run_id, status, end or now)
            _write_run_params(rows, cur, run_id, params)
            if intermediate:
                rows.add_metric_values(
                    cur, run_id, {INTERMEDIATE_KEY: sorted(intermediate.items())}, now
                )
            if values is not None:
                self._write_values(cur, study_id, run_id, values, now)
            cur.execute(
                q(_INSERT_TRIAL),
                (
                    study_id,
                    number,
                    run_id,
                    state,
                    _dump_values(values),
                    start,
                    end,
                    now if state == "running" else None,
                    _dump_params(params),
                    _dump_intermediate(intermediate),
                    _dump_attrs(template.user_attrs if template else {}),
                    _dump_attrs(template.system_attrs if template else {}),
                ),
            )
            trial_id = int(cur.fetchone()[0])
            if state == "running":
                cur.execute(q(_STUDY_RUN_START), (now, meta.run_id))
        return TrialRecord(
            id=trial_id,
            study_id=study_id,
            number=number,
            run_id=run_id,
            state=state,
            values=None if values is None else tuple(values),
            start_ms=start,
            complete_ms=end,
            params=params,
            intermediate=intermediate,
            user_attrs=dict(template.user_attrs) if template is not None else {},
            system_attrs=dict(template.system_attrs) if template is not None else {},
            heartbeat_ms=now if state == "running" else None,
        )

    def update_trial(self, trial_id: int, patch: TrialPatch) -> bool:
        now = now_ms()
        rows, q = self.rows, self.raw.sql
        with self.raw.tx() as cur:
            cur.execute(
                q(_TRIAL_FOR_UPDATE + (" FOR UPDATE" if self.raw.is_pg else "")), (trial_id,)
            )
            row = cur.fetchone()
            if row is None:
                msg = f"no trial with id {trial_id}"
                raise NotFoundError(msg)
            study_id, number, run_id, state, params, inter, user, system = row
            if not patch:
                return True
            meta = self._study_meta(study_id)
            if state in FINISHED_STATES:
                msg = (
                    f"trial {number} of study {meta.name!r} is already {state}; a finished "
                    "trial cannot change"
                )
                raise InvalidStateError(msg)
            if patch.state == "running" and state != "waiting":
                return False
            sets: list[str] = []
            args: list[Any] = []
            if patch.params:
                sets.append("params = ?")
                args.append(_dump_params({**_load_params(params), **patch.params}))
                _write_run_params(rows, cur, run_id, patch.params)
            if patch.intermediate:
                sets.append("intermediate = ?")
                args.append(_dump_intermediate({**_load_intermediate(inter), **patch.intermediate}))
                rows.add_metric_values(
                    cur, run_id, {INTERMEDIATE_KEY: sorted(patch.intermediate.items())}, now
                )
            if patch.user_attrs:
                sets.append("user_attrs = ?")
                args.append(_dump_attrs({**json.loads(user), **patch.user_attrs}))
            if patch.system_attrs:
                sets.append("system_attrs = ?")
                args.append(_dump_attrs({**json.loads(system), **patch.system_attrs}))
            if patch.state is not None:
                sets.append("state = ?")
                args.append(patch.state)
                if patch.values is not None:
                    checked = check_values(patch.values, meta.n_objectives) or []
                    sets.append("values_json = ?")
                    args.append(_dump_values(checked))
                    if checked:
                        self._write_values(cur, study_id, run_id, checked, now)
                if patch.state == "running":
                    sets.extend(("start_ms = ?", "heartbeat_ms = ?"))
                    args.extend((now, now))
                elif patch.state in FINISHED_STATES:
                    sets.append("complete_ms = ?")
                    args.append(now)
                rows.set_status(cur, run_id, RunStatus(run_status_of(patch.state)), now)
                rows.set_tags(cur, run_id, {"tune.state": patch.state})
            update = f"UPDATE tune_trials SET {', '.join(sets)} WHERE id = ?"
            cur.execute(q(update), (*args, trial_id))
            if patch.state in FINISHED_STATES:
                cur.execute(q(_ANY_RUNNING), (study_id,))
                if cur.fetchone() is None:  # the study's run is idle: finished (if not yet)
                    cur.execute(q(_STUDY_RUN_IDLE), (now, meta.run_id))
        return True

    def get_trial(self, trial_id: int) -> TrialRecord:
        with self.raw.tx(write=False) as cur:
            cur.execute(self.raw.sql(_SELECT_TRIALS + " WHERE id = ?"), (trial_id,))
            row = cur.fetchone()
        if row is None:
            msg = f"no trial with id {trial_id}"
            raise NotFoundError(msg)
        return _trial(row)

    def trial_id_of(self, study_id: int, number: int) -> int:
        with self.raw.tx(write=False) as cur:
            cur.execute(
                self.raw.sql("SELECT id FROM tune_trials WHERE study_id = ? AND number = ?"),
                (study_id, number),
            )
            found = cur.fetchone()
        if found is None:
            msg = f"no trial number {number} in study {study_id}"
            raise NotFoundError(msg)
        return int(found[0])

    def read_trials(
        self, study_id: int, after_id: int = 0, ids: Collection[int] = ()
    ) -> list[TrialRecord]:
        ids = [int(i) for i in ids]
        cond = "id > ?"
        if ids:
            cond = f"(id > ? OR id IN ({', '.join('?' * len(ids))}))"
        with self.raw.tx(write=False) as cur:
            cur.execute(
                self.raw.sql(f"{_SELECT_TRIALS} WHERE study_id = ? AND {cond} ORDER BY id"),
                (study_id, int(after_id), *ids),
            )
            rows = cur.fetchall()
            if not rows and after_id == 0:
                cur.execute(self.raw.sql("SELECT id FROM tune_studies WHERE id = ?"), (study_id,))
                if cur.fetchone() is None:
                    msg = f"no study with id {study_id}"
                    raise NotFoundError(msg)
        return [_trial(r) for r in rows]

    def beat_trials(self, trial_ids: Collection[int], now_ms: int) -> None:
        ids = [int(i) for i in trial_ids]
        if not ids:
            return
        marks = ", ".join("?" * len(ids))
        with self.raw.tx() as cur:
            cur.execute(
                self.raw.sql(
                    f"SELECT id, run_id, study_id FROM tune_trials WHERE id IN ({marks}) "
                    "AND state = 'running'"
                ),
                ids,
            )
            live = cur.fetchall()
            if not live:
                return
            cur.execute(
                self.raw.sql(
                    f"UPDATE tune_trials SET heartbeat_ms = ? WHERE id IN ({marks}) "
                    "AND state = 'running'"
                ),
                (now_ms, *ids),
            )
            self.rows.beat(cur, sorted({r[1] for r in live}), now_ms)
            # the studies' runs are running while some process beats their trials
            studies = sorted({self._study_meta(r[2]).run_id for r in live})
            cur.executemany(self.raw.sql(_STUDY_RUN_LIVE), [(now_ms, r) for r in studies])

    def stale_trials(self, study_id: int, grace_ms: int, now_ms: int) -> list[int]:
        with self.raw.tx(write=False) as cur:
            cur.execute(
                self.raw.sql(
                    "SELECT id FROM tune_trials WHERE study_id = ? AND state = 'running' "
                    "AND heartbeat_ms < ? ORDER BY id"
                ),
                (study_id, now_ms - grace_ms),
            )
            return [int(r[0]) for r in cur.fetchall()]

    # -- helpers ---------------------------------------------------------------------------
    def _study_meta(self, study_id: int) -> _StudyMeta:
        meta = self._meta.get(study_id)
        if meta is None:
            study = self.get_study_by_id(study_id)
            project = self.tracking.ensure_project(study.project)
            meta = _StudyMeta(study.name, project, study.run_id, len(study.directions))
            with self._lock:
                self._meta[study_id] = meta
        return meta

    def _require_study(self, conn: sa.Connection, study_id: int) -> None:
        s = t.tune_studies.c
        if conn.execute(sa.select(s.id).where(s.id == study_id)).first() is None:
            msg = f"no study with id {study_id}"
            raise NotFoundError(msg)

    def _adopt_run(self, cur: Any, run_id: str, meta: _StudyMeta) -> str:
        cur.execute(self.raw.sql("SELECT project_id FROM runs WHERE id = ?"), (run_id,))
        found = cur.fetchone()
        if found is None:
            msg = f"no run {run_id!r} to hold the trial; give a full run id"
            raise NotFoundError(msg)
        if found[0] != meta.project.id:
            msg = (
                f"run {run_id} is not in project {meta.project.name!r}, the project of study "
                f"{meta.name!r}; a trial's run belongs to its study's project"
            )
            raise InvalidArgumentError(msg)
        cur.execute(self.raw.sql("SELECT id FROM tune_trials WHERE run_id = ?"), (run_id,))
        if cur.fetchone() is not None:
            msg = f"run {run_id} already holds a trial; each trial has its own run"
            raise InvalidArgumentError(msg)
        return run_id

    def _write_values(
        self, cur: Any, study_id: int, run_id: str, values: list[float], now: int
    ) -> None:
        names = self._metric_names.get((study_id, len(values)))
        if names is None:
            cur.execute(
                self.raw.sql("SELECT system_attrs FROM tune_studies WHERE id = ?"), (study_id,)
            )
            names = metric_names_of(len(values), json.loads(cur.fetchone()[0]))
            if names[0] != "value" and names[0] != "value_0":  # set: names do not change
                self._metric_names[(study_id, len(values))] = names
        self.rows.add_metric_values(
            cur, run_id, {n: [(0, v)] for n, v in zip(names, values, strict=True)}, now
        )


def check_study_name(name: object) -> str:
    """Optuna's study names are free text; Luminary asks for 1-512 printable characters."""
    if not isinstance(name, str) or not 0 < len(name) <= 512 or not name.isprintable():
        msg = f"study name {name!r} is not valid; use 1-512 printable characters"
        raise InvalidArgumentError(msg)
    return name


def _run_name(name: str) -> str:
    return name if len(name) <= 256 else name[:253] + "..."


def _select_studies() -> sa.Select[Any]:
    return sa.select(t.tune_studies, t.projects.c.name.label("project")).join(
        t.projects, t.projects.c.id == t.tune_studies.c.project_id
    )


def _write_run_params(
    rows: RunRows, cur: Any, run_id: str, params: Mapping[str, ParamRecord]
) -> None:
    """The trial's params as the run's, where the name is a valid param key (Optuna's names
    are free text; the trial record keeps every one)."""
    good: dict[str, ParamValue] = {}
    for name, p in params.items():
        try:
            encode_param(name, p.external)
        except InvalidArgumentError:
            continue
        good[name] = p.external
    if good:
        rows.set_params(cur, run_id, good)


def _study(row: Any) -> StudyRecord:
    return StudyRecord(
        id=int(row["id"]),
        name=row["name"],
        project=row["project"],
        run_id=row["run_id"],
        directions=tuple(json.loads(row["directions"])),
        user_attrs=json.loads(row["user_attrs"]),
        system_attrs=json.loads(row["system_attrs"]),
        created_ms=int(row["created_ms"]),
    )


def _trial(row: Sequence[Any]) -> TrialRecord:
    (tid, study_id, number, run_id, state, values, start, complete, beat) = row[:9]
    params, inter, user, system = row[9:13]
    loaded = _load_values(values)
    return TrialRecord(
        id=int(tid),
        study_id=int(study_id),
        number=int(number),
        run_id=run_id,
        state=state,
        values=None if loaded is None else tuple(loaded),
        start_ms=start,
        complete_ms=complete,
        params=_load_params(params),
        intermediate=_load_intermediate(inter),
        user_attrs=json.loads(user) if user != "{}" else {},
        system_attrs=json.loads(system) if system != "{}" else {},
        heartbeat_ms=beat,
    )


def _dump_attrs(attrs: Mapping[str, Any]) -> str:
    try:
        return json.dumps(dict(attrs), allow_nan=True)
    except (TypeError, ValueError) as exc:
        msg = f"attribute values must be JSON-serialisable ({exc})"
        raise InvalidArgumentError(msg) from exc


def _dump_values(values: Sequence[float] | None) -> str | None:
    if values is None:
        return None
    return json.dumps([v if math.isfinite(v) else repr(v) for v in values])


def _load_values(raw: str | None) -> list[float] | None:
    if raw is None:
        return None
    return [float(v) for v in json.loads(raw)]


def _dump_params(params: Mapping[str, ParamRecord]) -> str:
    if not params:
        return "{}"
    return _dump_attrs({k: [p.internal, p.distribution, p.external] for k, p in params.items()})


def _load_params(raw: str) -> dict[str, ParamRecord]:
    if raw == "{}":
        return {}
    return {k: ParamRecord(float(v[0]), v[1], v[2]) for k, v in json.loads(raw).items()}


def _dump_intermediate(values: Mapping[int, float]) -> str:
    if not values:
        return "[]"
    return json.dumps(
        [[int(s), v if math.isfinite(v) else repr(float(v))] for s, v in values.items()]
    )


def _load_intermediate(raw: str) -> dict[int, float]:
    if raw == "[]":
        return {}
    return {int(s): float(v) for s, v in json.loads(raw)}
