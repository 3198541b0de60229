"""Tune's contract: studies, trials and their runs, and Optuna on top, run against every Store.

Subclass :class:`TuneContract` next to the Store contract and give it the same ``store``
fixture (a fresh, empty :class:`~luminary.store.Store`). Nothing waits on a clock: staleness
is asked at a ``now_ms`` in the future (stores that judge by their own clock, such as the
REST client's server, are given a zero grace instead).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from luminary._clock import now_ms
from luminary.errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    InvalidStateError,
    NotFoundError,
)
from luminary.store import RunStatus, Store
from luminary.tune import ParamRecord, StudyRecord, TrialPatch, TrialRecord

__all__ = ["TuneContract"]

_FLOAT = '{"name": "FloatDistribution", "attributes": {"log": false, "step": null, "low": 0.0, "high": 1.0}}'  # noqa: E501
_INT = '{"name": "IntDistribution", "attributes": {"log": false, "step": 1, "low": 1, "high": 8}}'


def _template(state: str, **changes: Any) -> TrialRecord:
    base: dict[str, Any] = {"id": 0, "study_id": 0, "number": 0, "run_id": "", "state": state}
    return TrialRecord(**{**base, **changes})


class TuneContract:
    project = "cms-tune"

    # -- helpers ---------------------------------------------------------------------------
    def _study(self, store: Store, name: str = "jet-tagger", *directions: str) -> StudyRecord:
        return store.create_study(self.project, name, list(directions) or ["minimize"])

    # -- studies ---------------------------------------------------------------------------
    def test_a_study_is_created_with_its_run(self, store: Store) -> None:
        study = self._study(store, "jet tagger / lr sweep", "minimize", "maximize")
        assert study.name == "jet tagger / lr sweep"
        assert study.project == self.project
        assert study.directions == ("minimize", "maximize")
        assert store.get_study_by_id(study.id) == study
        assert store.get_study(self.project, study.name) == study
        run = store.get_run(study.run_id)
        assert run.project == self.project
        assert run.tags["tune.study"] == study.name
        assert run.tags["tune.role"] == "study"

    def test_a_taken_study_name_is_refused(self, store: Store) -> None:
        self._study(store)
        with pytest.raises(AlreadyExistsError, match="jet-tagger"):
            self._study(store)
        assert len(store.list_studies(self.project)) == 1

    def test_an_unknown_study_names_the_nearest(self, store: Store) -> None:
        self._study(store, "jet-tagger")
        with pytest.raises(NotFoundError, match="did you mean 'jet-tagger'"):
            store.get_study(self.project, "jet-taggr")
        with pytest.raises(NotFoundError):
            store.get_study_by_id(999_999)

    def test_list_studies_counts_trials_and_finds_the_best(self, store: Store) -> None:
        low = self._study(store, "low")
        high = self._study(store, "high", "maximize")
        other = store.create_study("elsewhere", "x", ["minimize"])
        for v in (3.0, 1.0, 2.0):
            store.create_trial(low.id, _template("complete", values=(v,)))
            store.create_trial(high.id, _template("complete", values=(v,)))
        store.create_trial(low.id)
        store.create_trial(low.id, _template("pruned"))
        found = {s.study.name: s for s in store.list_studies(self.project)}
        assert set(found) == {"low", "high"}
        assert dict(found["low"].counts) == {"complete": 3, "running": 1, "pruned": 1}
        assert found["low"].n_trials == 5
        assert (found["low"].best_number, found["low"].best_value) == (1, 1.0)
        assert (found["high"].best_number, found["high"].best_value) == (0, 3.0)
        assert other.id in {s.study.id for s in store.list_studies()}

    def test_an_infinite_best_value_survives(self, store: Store) -> None:
        study = self._study(store)
        store.create_trial(study.id, _template("complete", values=(-math.inf,)))
        (summary,) = store.list_studies(self.project)
        assert summary.best_value == -math.inf
        (trial,) = store.read_trials(study.id)
        assert trial.values == (-math.inf,)

    def test_a_deleted_study_is_gone_but_its_runs_stay(self, store: Store) -> None:
        study = self._study(store)
        trial = store.create_trial(study.id)
        store.delete_study(study.id)
        with pytest.raises(NotFoundError):
            store.get_study_by_id(study.id)
        with pytest.raises(NotFoundError):
            store.get_trial(trial.id)
        assert store.list_studies(self.project) == []
        assert store.get_run(trial.run_id).parent_id == study.run_id
        with pytest.raises(NotFoundError):
            store.delete_study(study.id)
        again = self._study(store)  # the name is free again
        assert store.read_trials(again.id) == []

    def test_study_attrs_merge(self, store: Store) -> None:
        study = self._study(store)
        store.set_study_attrs(study.id, user_attrs={"a": 1, "b": [1, "x"]})
        store.set_study_attrs(study.id, user_attrs={"b": {"k": None}}, system_attrs={"s": "t"})
        got = store.get_study_by_id(study.id)
        assert dict(got.user_attrs) == {"a": 1, "b": {"k": None}}
        assert dict(got.system_attrs) == {"s": "t"}
        with pytest.raises(NotFoundError):
            store.set_study_attrs(999_999, user_attrs={"a": 1})

    # -- trials ----------------------------------------------------------------------------
    def test_a_new_trial_runs_as_a_child_run(self, store: Store) -> None:
        study = self._study(store)
        first, second = store.create_trial(study.id), store.create_trial(study.id)
        assert (first.number, second.number) == (0, 1)
        assert first.state == "running"
        assert first.heartbeat_ms is not None
        assert first.start_ms is not None
        assert store.get_trial(first.id) == first
        run = store.get_run(first.run_id)
        assert run.parent_id == study.run_id
        assert run.status is RunStatus.RUNNING
        assert run.tags["tune.trial"] == "0"
        assert run.tags["tune.state"] == "running"
        assert store.get_run(study.run_id).status is RunStatus.RUNNING

    def test_a_waiting_template_is_queued(self, store: Store) -> None:
        study = self._study(store)
        params = {"lr": ParamRecord(0.5, _FLOAT, 0.5)}
        trial = store.create_trial(
            study.id, _template("waiting", params=params, user_attrs={"fixed": True})
        )
        assert trial.state == "waiting"
        assert trial.start_ms is None
        assert trial.heartbeat_ms is None
        assert dict(store.get_trial(trial.id).params) == params
        assert store.get_run(trial.run_id).status is RunStatus.QUEUED

    def test_a_complete_template_keeps_everything(self, store: Store) -> None:
        study = self._study(store)
        params = {"lr": ParamRecord(0.25, _FLOAT, 0.25), "layers": ParamRecord(3.0, _INT, 3)}
        trial = store.create_trial(
            study.id,
            _template(
                "complete",
                values=(0.125,),
                params=params,
                intermediate={0: 1.0, 1: math.inf, 2: math.nan},
                user_attrs={"u": [1, 2]},
                system_attrs={"s": "x"},
            ),
        )
        got = store.get_trial(trial.id)
        assert got.state == "complete"
        assert got.values == (0.125,)
        assert dict(got.params) == params
        assert got.intermediate[0] == 1.0
        assert got.intermediate[1] == math.inf
        assert math.isnan(got.intermediate[2])
        assert dict(got.user_attrs) == {"u": [1, 2]}
        assert dict(got.system_attrs) == {"s": "x"}
        assert got.complete_ms is not None
        run = store.get_run(trial.run_id)
        assert run.status is RunStatus.FINISHED
        assert run.params == {"lr": 0.25, "layers": 3}
        assert run.metrics["value"] == 0.125

    def test_a_patch_writes_the_trial_and_its_run(self, store: Store) -> None:
        study = self._study(store)
        trial = store.create_trial(study.id)
        lr = ParamRecord(0.5, _FLOAT, 0.5)
        assert store.update_trial(trial.id, TrialPatch(params={"lr": lr}))
        assert store.update_trial(trial.id, TrialPatch(intermediate={0: 0.9, 1: 0.7}))
        assert store.update_trial(trial.id, TrialPatch(intermediate={2: 0.6}, user_attrs={"a": 1}))
        assert store.update_trial(
            trial.id, TrialPatch(system_attrs={"s": [1]}, user_attrs={"b": 2})
        )
        assert store.update_trial(trial.id, TrialPatch())  # an empty patch changes nothing
        mid = store.get_trial(trial.id)
        assert dict(mid.params) == {"lr": lr}
        assert dict(mid.intermediate) == {0: 0.9, 1: 0.7, 2: 0.6}
        assert dict(mid.user_attrs) == {"a": 1, "b": 2}
        assert dict(mid.system_attrs) == {"s": [1]}
        assert store.update_trial(trial.id, TrialPatch(state="complete", values=(0.5,)))
        done = store.get_trial(trial.id)
        assert done.state == "complete"
        assert done.values == (0.5,)
        assert done.complete_ms is not None
        run = store.get_run(trial.run_id)
        assert run.status is RunStatus.FINISHED
        assert run.params == {"lr": 0.5}
        assert run.tags["tune.state"] == "complete"
        assert run.metrics["value"] == 0.5
        history = store.get_metric_history(trial.run_id, "intermediate_value")
        assert (history.steps, history.values) == ([0, 1, 2], [0.9, 0.7, 0.6])
        assert store.get_run(study.run_id).status is RunStatus.FINISHED

    def test_a_pruned_and_a_failed_trial_end_their_runs(self, store: Store) -> None:
        study = self._study(store)
        pruned, failed = store.create_trial(study.id), store.create_trial(study.id)
        store.update_trial(pruned.id, TrialPatch(state="pruned"))
        store.update_trial(failed.id, TrialPatch(state="fail"))
        assert store.get_run(pruned.run_id).status is RunStatus.FINISHED
        assert store.get_run(pruned.run_id).tags["tune.state"] == "pruned"
        assert store.get_run(failed.run_id).status is RunStatus.FAILED

    def test_a_waiting_trial_is_claimed_once(self, store: Store) -> None:
        study = self._study(store)
        trial = store.create_trial(study.id, _template("waiting"))
        assert store.update_trial(trial.id, TrialPatch(state="running")) is True
        assert store.update_trial(trial.id, TrialPatch(state="running")) is False
        claimed = store.get_trial(trial.id)
        assert claimed.state == "running"
        assert claimed.start_ms is not None
        assert store.get_run(trial.run_id).status is RunStatus.RUNNING

    def test_a_finished_trial_cannot_change(self, store: Store) -> None:
        study = self._study(store)
        trial = store.create_trial(study.id)
        store.update_trial(trial.id, TrialPatch(state="complete", values=(1.0,)))
        for patch in (
            TrialPatch(user_attrs={"a": 1}),
            TrialPatch(state="fail"),
            TrialPatch(state="running"),
            TrialPatch(intermediate={0: 1.0}),
        ):
            with pytest.raises(InvalidStateError, match="already complete"):
                store.update_trial(trial.id, patch)
        assert store.update_trial(trial.id, TrialPatch())  # nothing to change: no error
        assert store.get_trial(trial.id).values == (1.0,)

    def test_read_trials_after_an_id_and_by_ids(self, store: Store) -> None:
        study = self._study(store)
        other = self._study(store, "other")
        trials = [store.create_trial(study.id) for _ in range(4)]
        theirs = store.create_trial(other.id)
        assert [t.id for t in store.read_trials(study.id)] == [t.id for t in trials]
        after = store.read_trials(study.id, after_id=trials[1].id)
        assert [t.id for t in after] == [trials[2].id, trials[3].id]
        both = store.read_trials(study.id, trials[2].id, [trials[0].id, theirs.id])
        assert [t.id for t in both] == [trials[0].id, trials[3].id]
        assert store.read_trials(study.id, trials[3].id) == []
        with pytest.raises(NotFoundError):
            store.read_trials(999_999)

    def test_trial_id_of_a_number(self, store: Store) -> None:
        study = self._study(store)
        trials = [store.create_trial(study.id) for _ in range(3)]
        assert store.trial_id_of(study.id, 2) == trials[2].id
        with pytest.raises(NotFoundError):
            store.trial_id_of(study.id, 3)

    def test_silent_trials_are_stale_and_beaten_ones_are_not(self, store: Store) -> None:
        study = self._study(store)
        quiet, beaten = store.create_trial(study.id), store.create_trial(study.id)
        done = store.create_trial(study.id)
        store.update_trial(done.id, TrialPatch(state="complete", values=(1.0,)))
        before = store.get_trial(beaten.id).heartbeat_ms
        assert before is not None
        # a later clock: the REST server beats by its own, so only later than the creation
        store.beat_trials([beaten.id, done.id], now_ms() + 60_000)
        after = store.get_trial(beaten.id).heartbeat_ms
        assert after is not None
        assert after >= before
        stale = store.stale_trials(study.id, 0, now_ms() + 10)
        assert quiet.id in stale
        assert done.id not in stale
        assert store.stale_trials(study.id, 10**9, now_ms()) == []
        store.beat_trials([], now_ms())  # nothing to beat: no error

    def test_a_trial_may_adopt_a_run_of_its_project(self, store: Store) -> None:
        study = self._study(store)
        run = store.create_run(self.project, name="job run")
        trial = store.create_trial(study.id, run_id=run.id)
        assert trial.run_id == run.id
        assert store.get_run(run.id).tags["tune.trial"] == "0"
        with pytest.raises(InvalidArgumentError, match="already holds a trial"):
            store.create_trial(study.id, run_id=run.id)
        elsewhere = store.create_run("elsewhere", name="x")
        with pytest.raises(InvalidArgumentError, match="project"):
            store.create_trial(study.id, run_id=elsewhere.id)

    # -- bad input -------------------------------------------------------------------------
    def test_bad_directions_and_names_are_refused(self, store: Store) -> None:
        with pytest.raises(InvalidArgumentError, match="directions"):
            store.create_study(self.project, "s", ["sideways"])
        with pytest.raises(InvalidArgumentError, match="directions"):
            store.create_study(self.project, "s", [])
        with pytest.raises(InvalidArgumentError, match="study name"):
            store.create_study(self.project, "", ["minimize"])
        with pytest.raises(InvalidArgumentError, match="study name"):
            store.create_study(self.project, "x" * 513, ["minimize"])
        assert store.list_studies(self.project) == []

    def test_a_bad_state_is_refused(self, store: Store) -> None:
        study = self._study(store)
        trial = store.create_trial(study.id)
        with pytest.raises(InvalidArgumentError, match="trial state 'done'"):
            store.update_trial(trial.id, TrialPatch(state="done"))
        with pytest.raises(InvalidArgumentError, match="trial state"):
            store.create_trial(study.id, _template("done"))
        assert store.get_trial(trial.id).state == "running"

    def test_bad_values_are_refused(self, store: Store) -> None:
        study = self._study(store)
        trial = store.create_trial(study.id)
        with pytest.raises(InvalidArgumentError, match="NaN"):
            store.update_trial(trial.id, TrialPatch(state="complete", values=(math.nan,)))
        with pytest.raises(InvalidArgumentError, match="1 objective"):
            store.update_trial(trial.id, TrialPatch(state="complete", values=(1.0, 2.0)))
        with pytest.raises(InvalidArgumentError, match="1 objective"):
            store.create_trial(study.id, _template("complete", values=(1.0, 2.0)))
        with pytest.raises(InvalidArgumentError, match="NaN"):
            store.create_trial(study.id, _template("complete", values=(math.nan,)))
        assert store.get_trial(trial.id).state == "running"
        assert [t.id for t in store.read_trials(study.id)] == [trial.id]

    def test_attrs_that_are_not_json_are_refused(self, store: Store) -> None:
        study = self._study(store)
        trial = store.create_trial(study.id)
        with pytest.raises(InvalidArgumentError):
            store.set_study_attrs(study.id, user_attrs={"a": object()})
        with pytest.raises(InvalidArgumentError):
            store.update_trial(trial.id, TrialPatch(user_attrs={"a": {1, 2}}))
        assert store.get_study_by_id(study.id).user_attrs == {}
        assert store.get_trial(trial.id).user_attrs == {}

    def test_unknown_ids_are_not_found(self, store: Store) -> None:
        with pytest.raises(NotFoundError):
            store.get_trial(999_999)
        with pytest.raises(NotFoundError):
            store.update_trial(999_999, TrialPatch(state="fail"))
        with pytest.raises(NotFoundError):
            store.create_trial(999_999)
        with pytest.raises(NotFoundError):
            store.trial_id_of(999_999, 0)

    # -- Optuna on the store ---------------------------------------------------------------
    def test_optuna_optimizes_and_a_second_storage_sees_it(self, store: Store) -> None:
        optuna = pytest.importorskip("optuna")
        from luminary.tune import LuminaryStorage

        optuna.logging.set_verbosity(optuna.logging.WARNING)

        def objective(trial: Any) -> float:
            x = trial.suggest_float("x", -10, 10)
            n = trial.suggest_int("n", 1, 4)
            kind = trial.suggest_categorical("kind", ["a", "b"])
            for step in range(5):
                trial.report((x - 2) ** 2 + step * 0.01, step)
                if trial.should_prune():
                    raise optuna.TrialPruned
            return float((x - 2) ** 2 + n + (0.5 if kind == "b" else 0.0))

        storage = LuminaryStorage(store, self.project, flush_s=0)
        study = optuna.create_study(
            study_name="quad",
            storage=storage,
            sampler=optuna.samplers.TPESampler(seed=1),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=3),
        )
        study.optimize(objective, n_trials=20)
        storage.close()
        trials = study.get_trials(deepcopy=False)
        assert len(trials) == 20
        states = {t.state for t in trials}
        assert states <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}

        other = LuminaryStorage(store, self.project)
        loaded = optuna.load_study(study_name="quad", storage=other)
        seen = loaded.get_trials(deepcopy=False)
        assert [(t.number, t.state, t.values, t.params) for t in seen] == [
            (t.number, t.state, t.values, t.params) for t in trials
        ]
        assert [t.intermediate_values for t in seen] == [t.intermediate_values for t in trials]
        assert loaded.best_trial.number == study.best_trial.number
        assert loaded.best_value == study.best_value
        (summary,) = store.list_studies(self.project)
        assert summary.best_number == study.best_trial.number
        assert summary.n_trials == 20
        best_run = store.get_run(other.run_id_of(study.best_trial._trial_id))
        assert best_run.params["x"] == study.best_params["x"]
        assert best_run.metrics["value"] == study.best_value
        other.close()
