"""lm.tune.optimize and friends refuse bad input with a clear message."""

from __future__ import annotations

from typing import Any

import pytest

optuna = pytest.importorskip("optuna")

import luminary as lm  # noqa: E402
from luminary.errors import InvalidArgumentError, InvalidStateError, NotFoundError  # noqa: E402


def _objective(trial: Any) -> float:
    return trial.suggest_float("x", 0, 1)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"n_trials": 0}, "n_trials=0"),
        ({"n_trials": -5}, "n_trials=-5"),
        ({"n_trials": 2.5}, "n_trials=2.5"),
        ({"n_trials": True}, "n_trials=True"),
        ({"n_trials": 10**12}, "n_trials=1000000000000"),
        ({"n_trials": 1, "parallel": 0}, "parallel=0"),
        ({"n_trials": 1, "seeds": 0}, "seeds=0"),
    ],
)
def test_bad_counts_are_refused(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(InvalidArgumentError, match=needle):
        lm.tune.optimize(_objective, study="bad", **kwargs)


def test_study_names_are_checked() -> None:
    store = lm.get_store()
    for bad in ("", "x" * 513, "tab\there"):
        with pytest.raises(InvalidArgumentError, match="study name"):
            store.create_study("p", bad, ["minimize"])
    with pytest.raises(InvalidArgumentError, match="directions"):
        store.create_study("p", "ok", ["sideways"])


def test_unknown_study_names_the_nearest() -> None:
    lm.tune.optimize(_objective, 1, study="btag-width", progress=False)
    with pytest.raises(KeyError, match="did you mean 'btag-width'"):
        lm.tune.load_study("btag-widht")
    with pytest.raises(NotFoundError, match="btag-width"):
        lm.get_store().get_study("default", "btag-widht")


def test_resume_of_an_inline_study_says_how_to_go_on() -> None:
    lm.tune.optimize(_objective, 1, study="inline-only", progress=False)
    with pytest.raises(InvalidStateError, match="did not run as jobs"):
        lm.tune.resume("inline-only")


def test_register_best_needs_the_artifact() -> None:
    study = lm.tune.optimize(_objective, 2, study="no-model", progress=False)
    with pytest.raises(NotFoundError, match=r"has no artifact 'model\.onnx'"):
        lm.tune.register_best(study, "tagger")


def test_a_finished_trial_cannot_change() -> None:
    study = optuna.create_study(storage=lm.tune.storage(), study_name="frozen")
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    study.tell(trial, 1.0)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        study._storage.set_trial_user_attr(trial._trial_id, "k", "v")
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)


def test_objective_values_must_be_numbers() -> None:
    study = optuna.create_study(storage=lm.tune.storage(), study_name="nan")
    study.optimize(lambda t: float("nan"), n_trials=1)  # Optuna fails a NaN trial itself
    assert study.trials[0].state.name == "FAIL"
    store = lm.get_store()
    rec = store.create_trial(study._study_id)
    from luminary.tune import TrialPatch

    with pytest.raises(InvalidArgumentError, match="NaN"):
        store.update_trial(rec.id, TrialPatch(state="complete", values=(float("nan"),)))
    with pytest.raises(InvalidArgumentError, match="trial state 'done'"):
        TrialPatch.from_dict({"state": "done"})
