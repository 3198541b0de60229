"""Tune's storage interface: studies and trials, kept in the store.

Coarse on purpose: a trial changes through one call, :meth:`TuneStore.update_trial`, with a
:class:`~luminary.tune.models.TrialPatch` (params, intermediate values, attributes, a new
state and its values, all in one transaction), and a process keeps itself up to date through
:meth:`TuneStore.read_trials` (trials created since the last one it saw, plus the unfinished
ones it names). That keeps the Optuna adapter (``storage.py``) to a few round trips per trial
over SQL and REST alike.

Every trial is a run: :meth:`create_trial` creates a child run of the study's run (or adopts a
given one, such as a job's run) and every patch writes the run's params, metrics
(``intermediate_value`` by step, and the objective value(s)), status and tag ``tune.state``
in the same commit.

Thread safety: implementations are safe to share between threads. Errors:
:class:`~luminary.errors.NotFoundError` for unknown studies and trials (with the nearest
study names), :class:`~luminary.errors.AlreadyExistsError` for a taken study name,
:class:`~luminary.errors.InvalidArgumentError` for bad input,
:class:`~luminary.errors.InvalidStateError` for a change to a finished trial.
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from luminary.tune.models import StudyRecord, StudySummary, TrialPatch, TrialRecord

__all__ = ["TuneStore"]


class TuneStore(abc.ABC):
    """Tune's part of the Store."""

    # -- studies ---------------------------------------------------------------------------
    @abc.abstractmethod
    def create_study(self, project: str, name: str, directions: Sequence[str]) -> StudyRecord:
        """A new study in ``project`` (created if missing), with its run."""

    @abc.abstractmethod
    def get_study(self, project: str, name: str) -> StudyRecord: ...

    @abc.abstractmethod
    def get_study_by_id(self, study_id: int) -> StudyRecord: ...

    @abc.abstractmethod
    def list_studies(self, project: str | None = None) -> list[StudySummary]:
        """Studies (of ``project``, or all the caller may read) with counts and best value."""

    @abc.abstractmethod
    def delete_study(self, study_id: int) -> None:
        """Delete a study and its trial records; the runs stay (they are the history)."""

    @abc.abstractmethod
    def set_study_attrs(
        self,
        study_id: int,
        user_attrs: Mapping[str, Any] | None = None,
        system_attrs: Mapping[str, Any] | None = None,
    ) -> None:
        """Merge attributes into the study's (JSON values)."""

    # -- trials ----------------------------------------------------------------------------
    @abc.abstractmethod
    def create_trial(
        self,
        study_id: int,
        template: TrialRecord | None = None,
        *,
        run_id: str | None = None,
    ) -> TrialRecord:
        """A new trial with the next number: ``running`` (no template), or a copy of
        ``template``'s state, values, params, intermediate values and attributes (Optuna's
        ``enqueue_trial`` and ``add_trial``). ``run_id`` adopts an existing run of the
        study's project (a job's run) instead of creating a child run."""

    @abc.abstractmethod
    def update_trial(self, trial_id: int, patch: TrialPatch) -> bool:
        """Apply ``patch`` in one transaction. Returns ``False`` only when the patch claims a
        trial (``state="running"``) that is no longer waiting; a patch to a finished trial
        raises :class:`~luminary.errors.InvalidStateError`."""

    @abc.abstractmethod
    def get_trial(self, trial_id: int) -> TrialRecord: ...

    @abc.abstractmethod
    def trial_id_of(self, study_id: int, number: int) -> int: ...

    @abc.abstractmethod
    def read_trials(
        self, study_id: int, after_id: int = 0, ids: Collection[int] = ()
    ) -> list[TrialRecord]:
        """The study's trials with an id above ``after_id``, and those in ``ids``, by id."""

    @abc.abstractmethod
    def beat_trials(self, trial_ids: Collection[int], now_ms: int) -> None:
        """Heartbeat running trials (and their runs, and their studies' runs)."""

    @abc.abstractmethod
    def stale_trials(self, study_id: int, grace_ms: int, now_ms: int) -> list[int]:
        """Running trials whose worker is gone: no heartbeat for ``grace_ms``, or a run that
        ended without them (a job's run that failed or was cancelled)."""
