"""Optuna's storage on Luminary's store: ``optuna.create_study(storage=lm.tune.storage())``.

:class:`LuminaryStorage` implements ``optuna.storages.BaseStorage`` (and Optuna's heartbeat
interface) over any Luminary store — embedded SQLite, PostgreSQL, or a team server over
REST — through :class:`~luminary.tune.TuneStore`'s few coarse calls. Every trial is a run,
child of the study's run, so trials are searchable like any run and carry their lineage.

How it stays cheap (Optuna's own storages spend 10-100 ms per trial):

- **A cache of finished trials.** A finished trial never changes, so each process reads it
  once; a refresh asks only for trials created since the last one seen and for the unfinished
  ones it does not run itself (one query).
- **Trials this process runs are owned.** Their current state lives here; params,
  intermediate values and attributes are written behind, folded into one patch, and reach
  the store within ``flush_s`` (default 0.2 s) or with the trial's end, whichever is first.
  The trial's end (``tell``) is one transaction holding everything, committed before
  ``tell`` returns: a completed trial is never lost. A crash loses at most the last
  ``flush_s`` of a running trial's reports — and that trial is failed by its heartbeat.
  ``flush_s=0`` writes every call through.
- **Heartbeats.** A background thread beats every trial this process runs (and its run)
  every ``heartbeat_s``, in ``Study.optimize`` and ask/tell alike; a trial silent for
  ``grace_s`` is failed by the next process that reads the study (at most once per
  ``heartbeat_s``, :meth:`LuminaryStorage.fail_stale`), with the retry callback if given.

Thread safety: one lock guards the cache; Optuna's ``n_jobs`` threads may share a storage.
"""

from __future__ import annotations

import atexit
import copy
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Collection, Container, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from luminary._optional import require
from luminary.errors import InvalidStateError, NotFoundError
from luminary.tune.models import ParamRecord, TrialPatch, TrialRecord

optuna = require("optuna", "tune", "hyperparameter search")

from optuna import distributions as _dists  # noqa: E402
from optuna.exceptions import DuplicatedStudyError, UpdateFinishedTrialError  # noqa: E402
from optuna.storages import BaseStorage  # noqa: E402
from optuna.storages._base import DEFAULT_STUDY_NAME_PREFIX  # noqa: E402
from optuna.storages._heartbeat import BaseHeartbeat  # noqa: E402
from optuna.study import StudyDirection  # noqa: E402
from optuna.study._frozen import FrozenStudy  # noqa: E402
from optuna.trial import FrozenTrial, TrialState  # noqa: E402

if TYPE_CHECKING:
    from luminary.tune._base import TuneStore

__all__ = ["LuminaryStorage"]

_log = logging.getLogger("luminary.tune")
_DIRECTION = {"minimize": StudyDirection.MINIMIZE, "maximize": StudyDirection.MAXIMIZE}
_STATE = {s.name.lower(): s for s in TrialState}


class _Study:
    """What a process knows of one study: its trials by number, which are unfinished (and
    not ours, so re-read on refresh), the best complete trial, the params' distributions."""

    def __init__(self, directions: list[StudyDirection], name: str) -> None:
        self.directions = directions
        self.name = name
        self.trials: list[FrozenTrial | None] = []
        self.max_seen = 0
        self.unfinished: set[int] = set()  # trial ids, not owned
        self.waiting: set[int] = set()  # trial numbers
        self.best: FrozenTrial | None = None
        self.dists: dict[str, _dists.BaseDistribution] = {}
        self.holes = False

    def put(self, trial: FrozenTrial) -> None:
        n = trial.number
        if n >= len(self.trials):
            if n > len(self.trials):
                self.holes = True
            self.trials.extend([None] * (n + 1 - len(self.trials)))
        self.trials[n] = trial
        if trial.state == TrialState.WAITING:
            self.waiting.add(n)
        else:
            self.waiting.discard(n)
        if trial.state == TrialState.COMPLETE and len(self.directions) == 1:
            self._consider_best(trial)
        for name, dist in trial.distributions.items():
            self.dists.setdefault(name, dist)

    def _consider_best(self, trial: FrozenTrial) -> None:
        best = self.best
        value = trial.values[0] if trial.values else None
        if value is None:
            return
        if best is None or best.values is None:
            self.best = trial
            return
        if self.directions[0] == StudyDirection.MAXIMIZE:
            better = value > best.values[0]
        else:
            better = value < best.values[0]
        if better or (value == best.values[0] and trial.number < best.number):
            self.best = trial

    def all(self) -> list[FrozenTrial]:
        if self.holes:
            self.holes = any(t is None for t in self.trials)
            if self.holes:
                return [t for t in self.trials if t is not None]
        return list(self.trials)  # type: ignore[arg-type]


class LuminaryStorage(BaseStorage, BaseHeartbeat):
    """Optuna's storage on a Luminary store, for studies of ``project``.

    ``heartbeat_s`` (default 2) is how often the trials this process runs are beaten;
    ``grace_s`` (default twice ``heartbeat_s``) is how long a silent trial is given before it
    counts as stale; ``failed_trial_callback`` runs for each stale trial failed (e.g.
    ``optuna.storages.RetryFailedTrialCallback()`` to requeue it); ``flush_s`` bounds how
    long a running trial's reports wait to be written (0: every call writes through).
    """

    def __init__(
        self,
        store: TuneStore,
        project: str,
        *,
        heartbeat_s: float = 2.0,
        grace_s: float | None = None,
        flush_s: float = 0.2,
        failed_trial_callback: Callable[[Any, FrozenTrial], None] | None = None,
    ) -> None:
        self.store = store
        self.project = project
        self.heartbeat_s = max(1, round(heartbeat_s))
        self.grace_s = float(grace_s) if grace_s is not None else 2.0 * self.heartbeat_s
        self.flush_s = max(0.0, float(flush_s))
        self.failed_trial_callback = failed_trial_callback
        self._lock = threading.RLock()
        self._studies: dict[int, _Study] = {}
        self._trial_study: dict[int, int] = {}
        self._owned: dict[int, FrozenTrial] = {}
        self._pending: dict[int, TrialPatch] = {}
        self._dist_json: dict[str, _dists.BaseDistribution] = {}
        self._adopt_run: str | None = None
        self._run_ids: dict[int, str] = {}
        self._numbers: dict[int, int] = {}
        self._to_json: dict[_dists.BaseDistribution, str] = {}
        self._stale_checked: dict[int, float] = {}
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._closed = False
        _LIVE.add(self)

    def __repr__(self) -> str:
        return f"LuminaryStorage({self.store!r}, project={self.project!r})"

    def __getstate__(self) -> dict[str, Any]:
        msg = (
            "a LuminaryStorage does not travel to other processes; create one there with "
            "lm.tune.storage() (jobs started by lm.tune.optimize do)"
        )
        raise TypeError(msg)

    # -- the runs trials adopt -------------------------------------------------------------
    def adopt_run(self, run_id: str | None) -> None:
        """The next trial this process creates takes ``run_id`` (a job's run) as its run."""
        self._adopt_run = run_id

    def runs_with_trials(self, study_id: int) -> set[str]:
        """The ids of the runs that hold a trial of the study (read fresh)."""
        with self._lock:
            self._refresh(study_id)
            return {
                run
                for trial_id, run in self._run_ids.items()
                if self._trial_study.get(trial_id) == study_id
            }

    def run_id_of(self, trial_id: int) -> str:
        """The id of the run that holds trial ``trial_id``."""
        with self._lock:
            run = self._run_ids.get(trial_id)
        if run is None:
            run = self.store.get_trial(trial_id).run_id
        return run

    # -- studies ---------------------------------------------------------------------------
    def create_new_study(
        self, directions: Sequence[StudyDirection], study_name: str | None = None
    ) -> int:
        from luminary.errors import AlreadyExistsError

        # "" is a name (refused by the store, as any invalid one), not a request for one
        name = DEFAULT_STUDY_NAME_PREFIX + str(uuid.uuid4()) if study_name is None else study_name
        try:
            rec = self.store.create_study(self.project, name, [d.name.lower() for d in directions])
        except AlreadyExistsError as exc:
            raise DuplicatedStudyError(str(exc)) from exc
        with self._lock:
            self._studies[rec.id] = _Study(list(directions), rec.name)
        return rec.id

    def delete_study(self, study_id: int) -> None:
        self.store.delete_study(study_id)
        with self._lock:
            self._studies.pop(study_id, None)

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self.store.set_study_attrs(study_id, user_attrs={key: value})

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self.store.set_study_attrs(study_id, system_attrs={key: value})

    def get_study_id_from_name(self, study_name: str) -> int:
        try:
            rec = self.store.get_study(self.project, study_name)
        except NotFoundError as exc:
            raise KeyError(str(exc)) from exc
        with self._lock:
            if rec.id not in self._studies:
                self._studies[rec.id] = _Study([_DIRECTION[d] for d in rec.directions], rec.name)
        return rec.id

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._study(study_id).name

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return list(self._study(study_id).directions)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return dict(self._get_study_record(study_id).user_attrs)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return dict(self._get_study_record(study_id).system_attrs)

    def get_all_studies(self) -> list[FrozenStudy]:
        return [
            FrozenStudy(
                study_name=s.study.name,
                direction=None,
                directions=[_DIRECTION[d] for d in s.study.directions],
                user_attrs=dict(s.study.user_attrs),
                system_attrs=dict(s.study.system_attrs),
                study_id=s.study.id,
            )
            for s in self.store.list_studies(self.project)
        ]

    # -- trials ----------------------------------------------------------------------------
    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        study = self._study(study_id)
        template = None if template_trial is None else self._record_of(study_id, template_trial)
        run_id, self._adopt_run = self._adopt_run, None
        rec = self.store.create_trial(study_id, template, run_id=run_id)
        frozen = self._frozen(rec)
        with self._lock:
            if rec.id == study.max_seen + 1:
                # ids are given in commit order: none was made between, by anyone, so the
                # next refresh need not read this one back
                study.max_seen = rec.id
            self._trial_study[rec.id] = study_id
            self._run_ids[rec.id] = rec.run_id
            self._numbers[rec.id] = rec.number
            study.put(frozen)
            if frozen.state == TrialState.RUNNING:
                self._owned[rec.id] = frozen
                self._ensure_thread()
            elif not frozen.state.is_finished():
                study.unfinished.add(rec.id)
        return rec.id

    def set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: _dists.BaseDistribution,
    ) -> None:
        with self._lock:
            trial = self._updatable(trial_id)
            study = self._study(self._trial_study[trial_id])
            prev = study.dists.get(param_name)
            if prev is not None:
                _dists.check_distribution_compatibility(prev, distribution)
            external = distribution.to_external_repr(param_value_internal)
            record = ParamRecord(float(param_value_internal), self._json_of(distribution), external)
            if trial_id in self._owned:
                trial = copy.copy(trial)
                trial.params = {**trial.params, param_name: external}
                trial.distributions = {**trial.distributions, param_name: distribution}
                self._replace(trial_id, trial)
                study.dists.setdefault(param_name, distribution)
        self._write(trial_id, TrialPatch(params={param_name: record}))

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        name = state.name.lower()
        if state == TrialState.RUNNING:
            try:
                claimed = self.store.update_trial(trial_id, TrialPatch(state="running"))
            except InvalidStateError as exc:
                raise UpdateFinishedTrialError(str(exc)) from exc
            if not claimed:
                return False
            rec = self.store.get_trial(trial_id)
            frozen = self._frozen(rec)
            with self._lock:
                study = self._study(rec.study_id)
                study.unfinished.discard(trial_id)
                study.put(frozen)
                self._trial_study[trial_id] = rec.study_id
                self._run_ids[trial_id] = rec.run_id
                self._numbers[trial_id] = rec.number
                self._owned[trial_id] = frozen
                self._ensure_thread()
            return True
        with self._lock:
            trial = self._updatable(trial_id)
            pending = self._pending.pop(trial_id, TrialPatch())
        patch = pending.merged(
            TrialPatch(state=name, values=None if values is None else tuple(values))
        )
        try:
            self.store.update_trial(trial_id, patch)
        except InvalidStateError as exc:
            with self._lock:
                self._owned.pop(trial_id, None)
            raise UpdateFinishedTrialError(str(exc)) from exc
        with self._lock:
            trial = copy.copy(trial)
            trial.state = state
            if values is not None:
                trial.values = list(values)
            trial.datetime_complete = datetime.now() if state.is_finished() else None
            self._owned.pop(trial_id, None)
            study = self._study(self._trial_study[trial_id])
            study.unfinished.discard(trial_id)
            study.put(trial)
            if not state.is_finished():
                study.unfinished.add(trial_id)
        return True

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        with self._lock:
            trial = self._updatable(trial_id)
            if trial_id in self._owned:
                trial = copy.copy(trial)
                trial.intermediate_values = {
                    **trial.intermediate_values,
                    step: float(intermediate_value),
                }
                self._replace(trial_id, trial)
        self._write(trial_id, TrialPatch(intermediate={step: float(intermediate_value)}))

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        with self._lock:
            trial = self._updatable(trial_id)
            if trial_id in self._owned:
                trial = copy.copy(trial)
                trial.user_attrs = {**trial.user_attrs, key: value}
                self._replace(trial_id, trial)
        self._write(trial_id, TrialPatch(user_attrs={key: value}))

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        with self._lock:
            trial = self._updatable(trial_id)
            if trial_id in self._owned:
                trial = copy.copy(trial)
                trial.system_attrs = {**trial.system_attrs, key: value}
                self._replace(trial_id, trial)
        self._write(trial_id, TrialPatch(system_attrs={key: value}))

    def get_trial(self, trial_id: int) -> FrozenTrial:
        with self._lock:
            owned = self._owned.get(trial_id)
            if owned is not None:
                return owned
            sid, number = self._trial_study.get(trial_id), self._numbers.get(trial_id)
            study = self._studies.get(sid) if sid is not None else None
            if study is not None and number is not None:
                cached = study.trials[number]
                if cached is not None and cached.state.is_finished():
                    return cached
        try:
            rec = self.store.get_trial(trial_id)
        except NotFoundError as exc:
            raise KeyError(str(exc)) from exc
        frozen = self._frozen(rec)
        with self._lock:
            self._trial_study[trial_id] = rec.study_id
            self._run_ids[trial_id] = rec.run_id
            self._numbers[trial_id] = rec.number
            study = self._studies.get(rec.study_id)
            if study is not None and frozen.state.is_finished():
                study.unfinished.discard(trial_id)
                study.put(frozen)
        return frozen

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        self._maybe_fail_stale(study_id)
        with self._lock:
            study = self._refresh(study_id)
            if states is not None and tuple(states) == (TrialState.WAITING,):  # type: ignore[arg-type]
                trials = [study.trials[n] for n in sorted(study.waiting)]
                out = [t for t in trials if t is not None]
            else:
                out = study.all()
                if states is not None:
                    out = [t for t in out if t.state in states]
        return copy.deepcopy(out) if deepcopy else out

    def get_best_trial(self, study_id: int) -> FrozenTrial:
        with self._lock:
            study = self._refresh(study_id)
            if len(study.directions) > 1:
                msg = "Best trial can be obtained only for single-objective optimization."
                raise RuntimeError(msg)
            if study.best is None:
                msg = "No trials are completed yet."
                raise ValueError(msg)
            return study.best

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        with self._lock:
            study = self._studies.get(study_id)
            if study is not None and 0 <= trial_number < len(study.trials):
                t = study.trials[trial_number]
                if t is not None:
                    return t._trial_id
        try:
            return self.store.trial_id_of(study_id, trial_number)
        except NotFoundError as exc:
            raise KeyError(str(exc)) from exc

    def get_trial_number_from_id(self, trial_id: int) -> int:
        return self.get_trial(trial_id).number

    def get_trial_param(self, trial_id: int, param_name: str) -> float:
        trial = self.get_trial(trial_id)
        return float(trial.distributions[param_name].to_internal_repr(trial.params[param_name]))

    def remove_session(self) -> None:
        self.flush()

    # -- heartbeat (Optuna's BaseHeartbeat) ------------------------------------------------
    def record_heartbeat(self, trial_id: int) -> None:
        with self._lock:
            if trial_id in self._owned and self._thread is not None and self._thread.is_alive():
                return  # this process's beater keeps it
        self.store.beat_trials([trial_id], _now_ms())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        stale = self.store.stale_trials(study_id, int(self.grace_s * 1000), _now_ms())
        with self._lock:
            return [i for i in stale if i not in self._owned]

    def get_heartbeat_interval(self) -> int | None:
        # Luminary beats every trial this process runs (ask/tell too, not only inside
        # Study.optimize) and fails stale trials itself (fail_stale); Optuna's own heartbeat
        # thread and its warning for ask/tell are not needed.
        return None

    def get_heartbeat_stale_trial_callback(self) -> Callable[[Any, FrozenTrial], None] | None:
        return self.failed_trial_callback

    # -- trials whose worker is gone --------------------------------------------------------
    def fail_stale(
        self, study_id: int, *, run_ids: Collection[str] = (), reason: str = "heartbeat"
    ) -> list[int]:
        """Fail the running trials whose worker is gone — silent for longer than ``grace_s``,
        or held by one of ``run_ids`` (the runs of jobs that ended) — and run
        ``failed_trial_callback`` for each (``RetryFailedTrialCallback`` requeues them).
        Returns the trial ids failed here (another process may have failed some first)."""
        stale = set(self._get_stale_trial_ids(study_id))
        if run_ids:
            wanted = set(run_ids)
            with self._lock:
                study = self._refresh(study_id)
                for t in study.all():
                    if t.state == TrialState.RUNNING and self._run_ids.get(t._trial_id) in wanted:
                        stale.add(t._trial_id)
        failed = []
        for trial_id in sorted(stale):
            patch = TrialPatch(state="fail", system_attrs={"luminary:fail_reason": reason})
            try:
                self.store.update_trial(trial_id, patch)
            except InvalidStateError:
                continue  # finished meanwhile, or failed by another worker
            with self._lock:
                self._owned.pop(trial_id, None)
                self._pending.pop(trial_id, None)
            failed.append(trial_id)
        if failed and self.failed_trial_callback is not None:
            study_obj = optuna.Study(study_name=self._study(study_id).name, storage=self)
            for trial_id in failed:
                self.failed_trial_callback(study_obj, copy.deepcopy(self.get_trial(trial_id)))
        return failed

    def _maybe_fail_stale(self, study_id: int) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._stale_checked.get(study_id, 0.0)
            if now - last < self.heartbeat_s:
                return
            self._stale_checked[study_id] = now
        self.fail_stale(study_id)

    # -- write-behind ----------------------------------------------------------------------
    def flush(self) -> None:
        """Write every buffered change now."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for trial_id, patch in pending.items():
            try:
                self.store.update_trial(trial_id, patch)
            except InvalidStateError:
                with self._lock:  # failed meanwhile (stale): this process no longer runs it
                    self._owned.pop(trial_id, None)
            except Exception:
                with self._lock:  # keep it for the next try (the store may be back)
                    later = self._pending.get(trial_id)
                    self._pending[trial_id] = patch if later is None else patch.merged(later)
                raise

    def close(self) -> None:
        """Flush, and stop beating this process's trials."""
        with self._lock:
            self._closed = True
            self._wake.notify_all()
        self.flush()

    def _write(self, trial_id: int, patch: TrialPatch) -> None:
        with self._lock:
            if trial_id in self._owned and self.flush_s > 0:
                prev = self._pending.get(trial_id)
                # the background thread, awake while this process runs trials, writes it
                # within flush_s (it looks twice per flush_s; no wake-up per report)
                if not self._pending:  # the age of the oldest buffered change
                    self._pending_since = time.monotonic()
                self._pending[trial_id] = patch if prev is None else prev.merged(patch)
                return
        try:
            self.store.update_trial(trial_id, patch)
        except InvalidStateError as exc:
            raise UpdateFinishedTrialError(str(exc)) from exc

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._closed = False
            self._thread = threading.Thread(
                target=_background, args=(weakref.ref(self),), name="luminary-tune", daemon=True
            )
            self._thread.start()

    def _tick(self) -> float | None:
        """One pass of the background thread: flush what is due, beat what is due; the
        seconds to wait for the next pass (``None``: stop)."""
        now = time.monotonic()
        with self._lock:
            if self._closed or (not self._owned and not self._pending):
                return None
            due_flush = bool(self._pending) and now - self._pending_since >= self.flush_s
            beat = now - self._last_beat >= self.heartbeat_s
            owned = list(self._owned)
        if due_flush:
            try:
                self.flush()
            except Exception as exc:  # noqa: BLE001 - retried on the next pass
                _log.warning("tune: could not write a trial's reports (%s); retrying", exc)
        if beat and owned:
            try:
                self.store.beat_trials(owned, _now_ms())
                self._last_beat = now
            except Exception as exc:  # noqa: BLE001 - retried on the next pass
                _log.warning("tune: could not beat running trials (%s); retrying", exc)
        return min(self.flush_s / 2 or self.heartbeat_s, self.heartbeat_s)

    _pending_since = 0.0
    _last_beat = 0.0

    # -- the cache -------------------------------------------------------------------------
    def _study(self, study_id: int) -> _Study:
        study = self._studies.get(study_id)
        if study is None:
            rec = self._get_study_record(study_id)
            study = _Study([_DIRECTION[d] for d in rec.directions], rec.name)
            with self._lock:
                self._studies.setdefault(study_id, study)
                study = self._studies[study_id]
        return study

    def _get_study_record(self, study_id: int) -> Any:
        try:
            return self.store.get_study_by_id(study_id)
        except NotFoundError as exc:
            raise KeyError(str(exc)) from exc

    def _refresh(self, study_id: int) -> _Study:
        study = self._study(study_id)
        recs = self.store.read_trials(study_id, study.max_seen, sorted(study.unfinished))
        for rec in recs:
            study.max_seen = max(study.max_seen, rec.id)
            self._trial_study[rec.id] = study_id
            self._run_ids[rec.id] = rec.run_id
            self._numbers[rec.id] = rec.number
            if rec.id in self._owned:
                if rec.state in ("running", "waiting"):
                    continue  # ours: memory is ahead of the store
                self._owned.pop(rec.id, None)  # failed by another worker as stale
                self._pending.pop(rec.id, None)
            frozen = self._frozen(rec)
            study.put(frozen)
            if frozen.state.is_finished():
                study.unfinished.discard(rec.id)
            else:
                study.unfinished.add(rec.id)
        return study

    def _updatable(self, trial_id: int) -> FrozenTrial:
        trial = self._owned.get(trial_id)
        if trial is None:
            trial = self.get_trial(trial_id)
        if trial.state.is_finished():
            msg = (
                f"trial #{trial.number} is already {trial.state.name}; a finished trial cannot "
                "change"
            )
            raise UpdateFinishedTrialError(msg)
        return trial

    def _replace(self, trial_id: int, trial: FrozenTrial) -> None:
        self._owned[trial_id] = trial
        self._study(self._trial_study[trial_id]).put(trial)

    def _json_of(self, dist: _dists.BaseDistribution) -> str:
        raw = self._to_json.get(dist)
        if raw is None:
            raw = self._to_json[dist] = _dists.distribution_to_json(dist)
        return raw

    def _dist(self, raw: str) -> _dists.BaseDistribution:
        dist = self._dist_json.get(raw)
        if dist is None:
            dist = self._dist_json[raw] = _dists.json_to_distribution(raw)
        return dist

    def _frozen(self, rec: TrialRecord) -> FrozenTrial:
        dists = {k: self._dist(p.distribution) for k, p in rec.params.items()}
        return FrozenTrial(
            number=rec.number,
            state=_STATE[rec.state],
            value=None,
            values=None if rec.values is None else list(rec.values),
            datetime_start=_dt(rec.start_ms),
            datetime_complete=_dt(rec.complete_ms),
            params={k: dists[k].to_external_repr(p.internal) for k, p in rec.params.items()},
            distributions=dists,
            user_attrs=dict(rec.user_attrs),
            system_attrs=dict(rec.system_attrs),
            intermediate_values=dict(rec.intermediate),
            trial_id=rec.id,
        )

    def _record_of(self, study_id: int, trial: FrozenTrial) -> TrialRecord:
        return TrialRecord(
            id=0,
            study_id=study_id,
            number=0,
            run_id="",
            state=trial.state.name.lower(),
            values=None if trial.values is None else tuple(float(v) for v in trial.values),
            start_ms=_ms(trial.datetime_start),
            complete_ms=_ms(trial.datetime_complete),
            params={
                k: ParamRecord(
                    float(trial.distributions[k].to_internal_repr(v)),
                    _dists.distribution_to_json(trial.distributions[k]),
                    v,
                )
                for k, v in trial.params.items()
            },
            intermediate=dict(trial.intermediate_values),
            user_attrs=dict(trial.user_attrs),
            system_attrs=dict(trial.system_attrs),
        )


def _background(ref: weakref.ReferenceType[LuminaryStorage]) -> None:
    while True:
        storage = ref()
        if storage is None:
            return
        wait = storage._tick()
        if wait is None:
            return
        with storage._wake:
            storage._wake.wait(wait)
        del storage


def _now_ms() -> int:
    from luminary._clock import now_ms

    return now_ms()


def _dt(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000)


def _ms(dt: datetime | None) -> int | None:
    return None if dt is None else int(dt.timestamp() * 1000)


_LIVE: weakref.WeakSet[LuminaryStorage] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    for storage in list(_LIVE):
        try:
            storage.close()
        except Exception as exc:  # noqa: BLE001 - exiting; say so and go on
            _log.warning("tune: reports of a running trial could not be written (%s)", exc)
