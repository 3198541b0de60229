"""Run rows written on a driver cursor, inside another domain's transaction.

The hot path of hyperparameter search writes a trial and its run hundreds of times a second;
SQLAlchemy's per-statement cost would be most of it, so tune writes through
:class:`~luminary.storage.engine.RawSession`. The SQL for tracking's tables stays here, in
tracking. Semantics match :class:`~luminary.tracking.SqlTracking`'s ``write_*`` methods:
params are set once, a metric series keeps its latest point by (step, time), NaN is NULL.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from luminary._ids import new_id
from luminary.storage.engine import RawSession
from luminary.tracking._validate import check_tags, encode_param
from luminary.tracking.models import ParamValue, RunStatus

__all__ = ["RunRows"]

_INSERT_RUN = (
    "INSERT INTO runs (id, project_id, name, status, parent_id, start_ms, end_ms, heartbeat_ms)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_PARAM = (
    "INSERT INTO params (run_id, key, value_type, value_text, value_num) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (run_id, key) DO NOTHING"
)
_UPSERT_TAG = (
    "INSERT INTO tags (run_id, key, value) VALUES (?, ?, ?)"
    " ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value"
)
_NEWER = (
    "(metric_series.last_step IS NULL OR excluded.last_step > metric_series.last_step OR "
    "(excluded.last_step = metric_series.last_step AND excluded.last_ms >= metric_series.last_ms))"
)
_UPSERT_SERIES = (
    "INSERT INTO metric_series (id, run_id, key, last_value, last_step, last_ms, count)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, key) DO UPDATE SET"
    " count = metric_series.count + excluded.count,"
    f" last_value = CASE WHEN {_NEWER} THEN excluded.last_value ELSE metric_series.last_value END,"
    f" last_ms = CASE WHEN {_NEWER} THEN excluded.last_ms ELSE metric_series.last_ms END,"
    f" last_step = CASE WHEN {_NEWER} THEN excluded.last_step ELSE metric_series.last_step END"
    " RETURNING id"
)
_INSERT_POINT = "INSERT INTO metric_points (series_id, step, ts_ms, value) VALUES (?, ?, ?, ?)"
_SET_STATUS_END = "UPDATE runs SET status = ?, end_ms = ? WHERE id = ?"
_SET_STATUS_LIVE = "UPDATE runs SET status = ?, end_ms = NULL, heartbeat_ms = ? WHERE id = ?"
_BEAT = (
    "UPDATE runs SET heartbeat_ms = ?, status = 'running', end_ms = NULL WHERE id = ? AND"
    " (status = 'running' OR status = 'killed')"
)


class RunRows:
    """Writes to runs, params, tags and metrics on a cursor of ``session``'s transactions."""

    def __init__(self, session: RawSession) -> None:
        self.s = session

    def insert_run(
        self,
        cur: Any,
        *,
        project_id: str,
        name: str,
        parent_id: str | None,
        status: RunStatus,
        start_ms: int,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        run_id = new_id(start_ms)
        cur.execute(
            self.s.sql(_INSERT_RUN),
            (run_id, project_id, name, status.value, parent_id, start_ms, None, start_ms),
        )
        if tags:
            self.set_tags(cur, run_id, tags)
        return run_id

    def set_params(self, cur: Any, run_id: str, params: Mapping[str, ParamValue]) -> None:
        """Params a run does not hold yet (a param is set once; later values are ignored)."""
        rows = []
        for key, value in params.items():
            vtype, text, num = encode_param(key, value)
            rows.append((run_id, key, vtype, text, num))
        if rows:
            cur.executemany(self.s.sql(_INSERT_PARAM), rows)

    def set_tags(self, cur: Any, run_id: str, tags: Mapping[str, str]) -> None:
        rows = [(run_id, k, v) for k, v in check_tags(tags).items()]
        if rows:
            cur.executemany(self.s.sql(_UPSERT_TAG), rows)

    def add_metric_values(
        self,
        cur: Any,
        run_id: str,
        values: Mapping[str, Sequence[tuple[int, float]]],
        ts_ms: int,
    ) -> None:
        """Points ``{key: [(step, value), …]}``, their series created where missing."""
        points: list[tuple[int, int, int, float | None]] = []
        for key, pts in values.items():
            if not pts:
                continue
            last = max(pts, key=lambda p: p[0])
            cur.execute(
                self.s.sql(_UPSERT_SERIES),
                (secrets.randbits(62), run_id, key, _num(last[1]), last[0], ts_ms, len(pts)),
            )
            sid = cur.fetchone()[0]
            points.extend((sid, step, ts_ms, _num(v)) for step, v in pts)
        if points:
            cur.executemany(self.s.sql(_INSERT_POINT), points)

    def set_status(self, cur: Any, run_id: str, status: RunStatus, now_ms: int) -> None:
        """``status``, with the end time when it is terminal (else a fresh heartbeat)."""
        if status.is_terminal:
            cur.execute(self.s.sql(_SET_STATUS_END), (status.value, now_ms, run_id))
        else:
            cur.execute(self.s.sql(_SET_STATUS_LIVE), (status.value, now_ms, run_id))

    def beat(self, cur: Any, run_ids: Collection[str], now_ms: int) -> None:
        """Heartbeat running runs (and revive ones the reaper marked killed meanwhile)."""
        cur.executemany(self.s.sql(_BEAT), [(now_ms, r) for r in run_ids])


def _num(v: float) -> float | None:
    return None if v != v else float(v)
