"""Tune: hyperparameter search at scale, on Optuna.

Optuna does the searching (TPE, GP, CMA-ES, NSGA-II, random and grid samplers; median,
ASHA and Hyperband pruners); Luminary keeps the studies, runs the trials and ties each to
its data, code, energy and model.

- ``models.py`` — values: :class:`StudyRecord`, :class:`TrialRecord`, :class:`TrialPatch`.
- ``_base.py`` — :class:`TuneStore`, tune's part of the Store; ``_sql.py`` implements it
  (each trial is written with its run, in one commit).
- ``_optuna.py`` — :class:`LuminaryStorage`, Optuna's ``BaseStorage`` on any Luminary store
  (SQLite, PostgreSQL, REST): ``optuna.create_study(storage=lm.tune.storage())``.
- ``_api.py`` — the SDK: :func:`storage`, :func:`optimize` (trials in this process, or as
  jobs on GPU fractions), :func:`best` (noise-aware selection), :func:`register_best`.
- ``_noise.py`` — repeated seeds per configuration: mean ± standard error, and selection by a
  lower confidence bound.
- ``_report.py`` — what a study's trials say, for people: value ± error, the best trial,
  the Pareto front, and the joules and GPU-hours spent to reach the best.
- ``_worker.py`` — what a trial job runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from luminary._lazy import lazy_getattr
from luminary.tune._base import TuneStore
from luminary.tune.models import (
    FINISHED_STATES,
    TRIAL_STATES,
    ParamRecord,
    StudyRecord,
    StudySummary,
    TrialPatch,
    TrialRecord,
)

if TYPE_CHECKING:
    from luminary.tune._api import (
        best,
        current_seed,
        load_study,
        optimize,
        register_best,
        resume,
        storage,
        trial_run_id,
    )
    from luminary.tune._noise import NoisyValue, select
    from luminary.tune._optuna import LuminaryStorage
    from luminary.tune._report import (
        StudyCost,
        best_record,
        pareto_numbers,
        run_cost,
        study_cost,
        trial_error,
        trial_mean,
    )
    from luminary.tune._sql import SqlTune

__all__ = [
    "FINISHED_STATES",
    "TRIAL_STATES",
    "LuminaryStorage",
    "NoisyValue",
    "ParamRecord",
    "SqlTune",
    "StudyCost",
    "StudyRecord",
    "StudySummary",
    "TrialPatch",
    "TrialRecord",
    "TuneStore",
    "best",
    "best_record",
    "current_seed",
    "load_study",
    "optimize",
    "pareto_numbers",
    "register_best",
    "resume",
    "run_cost",
    "select",
    "storage",
    "study_cost",
    "trial_error",
    "trial_mean",
    "trial_run_id",
]

__getattr__ = lazy_getattr(
    {
        "LuminaryStorage": "luminary.tune._optuna",
        "SqlTune": "luminary.tune._sql",
        "NoisyValue": "luminary.tune._noise",
        "select": "luminary.tune._noise",
        "best": "luminary.tune._api",
        "current_seed": "luminary.tune._api",
        "load_study": "luminary.tune._api",
        "optimize": "luminary.tune._api",
        "register_best": "luminary.tune._api",
        "resume": "luminary.tune._api",
        "StudyCost": "luminary.tune._report",
        "best_record": "luminary.tune._report",
        "pareto_numbers": "luminary.tune._report",
        "run_cost": "luminary.tune._report",
        "study_cost": "luminary.tune._report",
        "trial_error": "luminary.tune._report",
        "trial_mean": "luminary.tune._report",
        "storage": "luminary.tune._api",
        "trial_run_id": "luminary.tune._api",
    }
)
