"""Pages about hyperparameter studies: a project's studies, and a study's page (its summary
and plan, the objective per trial with the best so far, parallel coordinates over the params,
parameter importance, the Pareto front of a two-objective study, the trials linked to their
runs, and the joules and GPU-hours it took to reach the best trial).

The page's data is shaped here without I/O (:func:`study_view`) and drawn by ``tune.js`` with
the vendored uPlot (and a plain canvas for the parallel coordinates). Parameter importance is
Optuna's PED-ANOVA (no dependency beyond Optuna), computed here when Optuna is installed; the
rest of the page needs no Optuna.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from luminary._clock import from_ms
from luminary.errors import MissingDependencyError, NotFoundError
from luminary.server.ui._web import Web, pages
from luminary.store import Store
from luminary.tune import (
    StudyRecord,
    TrialRecord,
    best_record,
    pareto_numbers,
    run_cost,
    study_cost,
    trial_error,
)

__all__ = ["importance", "router", "study_view"]

#: The study page's trials table shows at most this many (the newest).
TRIAL_ROWS = 1000
PLAN_ATTR = "luminary:plan"


def router(web: Web) -> APIRouter:
    r = APIRouter(include_in_schema=False)
    store = web.store

    @r.get("/projects/{project}/studies")
    @pages(web)
    def studies(request: Request, project: str) -> Response:
        principal = web.principal(request)
        web.check(principal, "project", project)
        store.get_project(project)
        return web.render(
            request,
            "studies.html",
            project=project,
            studies=store.list_studies(project),
            when=_when,
        )

    @r.get("/projects/{project}/studies/{name:path}")
    @pages(web)
    def study_page(request: Request, project: str, name: str) -> Response:
        principal = web.principal(request)
        web.check(principal, "project", project)
        study = store.get_study(project, name)
        trials = store.read_trials(study.id)
        metrics = _trial_metrics(store, study, trials)
        view = study_view(study, trials, metrics)
        return web.render(
            request,
            "study.html",
            project=project,
            study=study,
            view=view,
            importance=importance(study.directions, trials),
            trials=trials[-TRIAL_ROWS:][::-1],
            total=len(trials),
            value=_value_text,
            duration=_duration,
            when=_when,
        )

    return r


def _trial_metrics(
    store: Store, study: StudyRecord, trials: Sequence[TrialRecord]
) -> dict[str, Mapping[str, float]]:
    """Each trial's run's latest metrics: the study's runs in one search (tag ``tune.study``),
    then any trial run that search missed, one by one."""
    quoted = study.name.replace("\\", "\\\\").replace("'", "\\'")
    found = store.search_runs(study.project, f"tags.`tune.study` = '{quoted}'", limit=None)
    metrics: dict[str, Mapping[str, float]] = {run.id: run.metrics for run in found}
    for t in trials:
        if t.run_id not in metrics:
            try:
                metrics[t.run_id] = store.get_run(t.run_id).metrics
            except NotFoundError:
                metrics[t.run_id] = {}
    return metrics


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _param_axes(trials: Sequence[TrialRecord]) -> list[dict[str, Any]]:
    """One axis per param: numeric (``log`` when the distribution is) or categorical with
    its choices as labels."""
    axes: dict[str, dict[str, Any]] = {}
    for t in trials:
        for key, p in t.params.items():
            if key in axes:
                continue
            try:
                dist = json.loads(p.distribution)
            except ValueError:
                dist = {}
            attrs = dist.get("attributes", {}) if isinstance(dist, dict) else {}
            if isinstance(dist, dict) and dist.get("name") == "CategoricalDistribution":
                labels = [str(c) for c in attrs.get("choices", [])]
                axes[key] = {"name": key, "kind": "cat", "labels": labels, "log": False}
            else:
                axes[key] = {
                    "name": key,
                    "kind": "num",
                    "labels": [],
                    "log": bool(attrs.get("log")),
                }
    return [axes[k] for k in sorted(axes)]


def _axis_value(axis: Mapping[str, Any], p: Any) -> float | None:
    if p is None:
        return None
    if axis["kind"] == "cat":
        labels = axis["labels"]
        text = str(p.external)
        return float(labels.index(text)) if text in labels else None
    v = p.external
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def study_view(
    study: StudyRecord,
    trials: Sequence[TrialRecord],
    metrics: Mapping[str, Mapping[str, float]],
) -> dict[str, Any]:
    """Everything the study page shows but the importance, as plain values (the plots' data is
    JSON-ready): counts by state, the best trial (single objective, by the lower confidence
    bound as :func:`luminary.tune.best`) with its error, the Pareto front, the plots' series
    and the cost to reach the best against the whole study's."""
    directions = list(study.directions)
    multi = len(directions) > 1
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state] = counts.get(t.state, 0) + 1
    complete = [t for t in trials if t.state == "complete" and t.values]
    best = None if multi else best_record(trials, directions)
    front = pareto_numbers(trials, directions) if multi else []
    sign = 1.0 if directions[0] == "minimize" else -1.0
    objective: dict[str, list[Any]] = {"x": [], "y": [], "best": [], "err": []}
    so_far: float | None = None
    for t in sorted(complete, key=lambda t: t.number):
        v = t.values[0] if t.values else math.nan
        if math.isfinite(v) and (so_far is None or sign * v < sign * so_far):
            so_far = v
        objective["x"].append(t.number)
        objective["y"].append(_finite(v))
        objective["best"].append(so_far)
        objective["err"].append(trial_error(t))
    axes = _param_axes(complete)
    parallel = {
        "axes": axes,
        "rows": [
            {
                "number": t.number,
                "value": _finite(t.values[0]) if t.values else None,
                "p": [_axis_value(a, t.params.get(a["name"])) for a in axes],
            }
            for t in sorted(complete, key=lambda t: t.number)
        ],
        "direction": directions[0],
        "objective": "value" if not multi else f"objective 1 ({directions[0]})",
    }
    pareto = None
    if len(directions) == 2:
        on = set(front)
        pts = sorted(complete, key=lambda t: t.values[0] if t.values else 0.0)
        pareto = {
            "names": [f"objective 1 ({directions[0]})", f"objective 2 ({directions[1]})"],
            "x": [_finite(t.values[0]) for t in pts if t.values],
            "front": [_finite(t.values[1]) if t.number in on else None for t in pts if t.values],
            "rest": [None if t.number in on else _finite(t.values[1]) for t in pts if t.values],
            "numbers": [t.number for t in pts],
        }
    total = study_cost(trials, metrics)
    to_best = None if best is None else study_cost(trials, metrics, up_to=best.number)
    plan = study.system_attrs.get(PLAN_ATTR)
    return {
        "directions": directions,
        "multi": multi,
        "counts": dict(sorted(counts.items())),
        "best": best,
        "best_error": None if best is None else trial_error(best),
        "front": front,
        "objective": objective,
        "parallel": parallel,
        "pareto": pareto,
        "cost_total": total,
        "cost_to_best": to_best,
        "trial_cost": {t.run_id: run_cost(metrics.get(t.run_id, {})) for t in trials},
        "plan": plan if isinstance(plan, dict) else None,
    }


def importance(directions: Sequence[str], trials: Sequence[TrialRecord]) -> dict[str, Any]:
    """Optuna's PED-ANOVA importance of each param for the (first) objective over the complete
    trials: ``{"values": {param: share}}`` largest first, or ``{"note": why there is none}``."""
    complete = [t for t in trials if t.state == "complete" and t.values and t.params]
    if len(complete) < 2:
        return {"note": "needs at least two complete trials with parameters"}
    try:
        from luminary._optional import require

        optuna = require("optuna", "tune", "Parameter importance on the study page")
    except MissingDependencyError as exc:
        return {"note": exc.message}
    from optuna.distributions import json_to_distribution
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances
    from optuna.trial import TrialState, create_trial

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PED-ANOVA is marked experimental
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            study = optuna.create_study(directions=list(directions))
            study.add_trials(
                [
                    create_trial(
                        state=TrialState.COMPLETE,
                        values=list(t.values or ()),
                        params={k: p.external for k, p in t.params.items()},
                        distributions={
                            k: json_to_distribution(p.distribution) for k, p in t.params.items()
                        },
                    )
                    for t in complete
                ]
            )
            found = get_param_importances(
                study,
                evaluator=PedAnovaImportanceEvaluator(),
                target=(lambda t: t.values[0]) if len(directions) > 1 else None,
            )
        except (ValueError, RuntimeError, TypeError) as exc:
            return {"note": f"Optuna could not compute it: {exc}"}
    return {"values": {k: float(v) for k, v in found.items()}}


def _value_text(t: TrialRecord) -> str:
    if not t.values:
        return ""
    if len(t.values) > 1:
        return ", ".join(f"{v:.6g}" for v in t.values)
    err = trial_error(t)
    return f"{t.values[0]:.6g}" + ("" if err is None else f" ± {err:.2g}")


def _duration(t: TrialRecord) -> str:
    if t.start_ms is None or t.complete_ms is None:
        return ""
    seconds = (t.complete_ms - t.start_ms) / 1000
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _when(ms: int | None) -> str:
    when = from_ms(ms)
    return "" if when is None else when.strftime("%Y-%m-%d %H:%M:%S")
