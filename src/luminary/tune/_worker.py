"""What a trial job runs: load the study, take the job's run as the trial's run, run one trial.

The sampler runs here, in the job, as in Optuna's own distributed optimisation: it reads
every trial so far from the store. Its random generator is reseeded so that parallel jobs do
not draw the same first points.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

__all__ = ["run_trial"]


def run_trial(
    study_name: str,
    project: str,
    objective: Callable[..., Any],
    sampler: Any,
    pruner: Any,
    seeds: int,
    catch: tuple[type[Exception], ...],
) -> dict[str, Any]:
    """Run one trial of ``study_name`` in this job; returns its number, state and values."""
    import optuna

    from luminary.tune._api import storage, wrap_objective

    store = storage(project)
    store.adopt_run(os.environ.get("LUMINARY_RUN_ID") or None)
    if sampler is not None:
        sampler.reseed_rng()
    study = optuna.load_study(study_name=study_name, storage=store, sampler=sampler, pruner=pruner)
    numbers: list[int] = []

    def remember(_study: Any, trial: Any) -> None:
        numbers.append(trial.number)

    try:
        study.optimize(
            wrap_objective(objective, store, seeds=seeds, energy=False),
            n_trials=1,
            catch=catch,
            callbacks=[remember],
        )
    finally:
        store.close()
    if not numbers:
        return {"number": None, "state": None, "values": None}
    trial = study.trials[numbers[0]] if numbers[0] < len(study.trials) else None
    if trial is None:
        return {"number": numbers[0], "state": None, "values": None}
    return {"number": trial.number, "state": trial.state.name.lower(), "values": trial.values}
