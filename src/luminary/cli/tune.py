"""``luminary tune list|show|best|run|resume|register-best``: hyperparameter studies.

``luminary tune run search.py --trials 200 --parallel 16 --gpus 0.25`` imports the script
(it defines ``objective(trial)``, and may define ``sampler``, ``pruner``, ``direction`` or
``directions`` and ``study_name``) and runs its trials with :func:`luminary.tune.optimize`;
``tune show`` lists a study's trials, ``tune best`` picks the best with the noise in mind.
"""

from __future__ import annotations

import os
import runpy
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from luminary.cli._output import (
    OUTPUT,
    Output,
    emit_json,
    err,
    fmt_duration,
    fmt_value,
    new_table,
    out,
)
from luminary.errors import InvalidArgumentError

app = typer.Typer(help="Hyperparameter studies (Optuna on Luminary): run, inspect, pick the best.")

PROJECT = typer.Option("--project", "-p", help="Project (default: LUMINARY_PROJECT or default).")
MAX_TRIALS = 10_000_000

TRIAL_STYLE = {
    "complete": "green",
    "running": "cyan",
    "waiting": "yellow",
    "pruned": "magenta",
    "fail": "red",
}


class Rule(StrEnum):
    lcb = "lcb"
    mean = "mean"
    value = "value"


class Direction(StrEnum):
    minimize = "minimize"
    maximize = "maximize"


def _project(project: str | None) -> str:
    return project or os.environ.get("LUMINARY_PROJECT") or "default"


def _state(state: str) -> str:
    return f"[{TRIAL_STYLE.get(state, 'white')}]{state}[/]"


def _value_text(trial: Any) -> str:
    from luminary.tune import trial_error

    if not trial.values:
        return ""
    if len(trial.values) > 1:
        return ", ".join(fmt_value(v) for v in trial.values)
    error = trial_error(trial)
    text = fmt_value(trial.values[0])
    return text if error is None else f"{text} ± {error:.2g}"


def _params_text(trial: Any) -> str:
    return ", ".join(f"{k}={fmt_value(p.external)}" for k, p in trial.params.items())


def _duration(trial: Any) -> float | None:
    if trial.start_ms is None or trial.complete_ms is None:
        return None
    return float(trial.complete_ms - trial.start_ms) / 1000


def trial_dict(trial: Any, pareto: bool = False) -> dict[str, Any]:
    from luminary.tune import trial_error

    return {
        "number": trial.number,
        "state": trial.state,
        "values": None if trial.values is None else list(trial.values),
        "stderr": trial_error(trial),
        "params": {k: p.external for k, p in trial.params.items()},
        "duration_s": _duration(trial),
        "run_id": trial.run_id,
        "pareto": pareto,
        "user_attrs": dict(trial.user_attrs),
    }


def _summary_dict(s: Any) -> dict[str, Any]:
    return {
        "project": s.study.project,
        "name": s.study.name,
        "id": s.study.id,
        "run_id": s.study.run_id,
        "directions": list(s.study.directions),
        "counts": dict(s.counts),
        "trials": s.n_trials,
        "best_number": s.best_number,
        "best_value": s.best_value,
    }


def _study_and_trials(store: Any, name: str, project: str) -> tuple[Any, list[Any]]:
    study = store.get_study(project, name)  # NotFoundError names the nearest study
    return study, store.read_trials(study.id)


@app.command("list")
def list_studies(
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Project (default: all).")
    ] = None,
    output: Output = OUTPUT,
) -> None:
    """Studies, newest first, with their trials by state and best value."""
    import luminary as lm

    summaries = lm.get_store().list_studies(project)
    if output is Output.json:
        emit_json([_summary_dict(s) for s in summaries])
        return
    if not summaries:
        where = f" in project {project!r}" if project else ""
        out.print(
            f"no studies{escape(where)} yet; `luminary tune run SCRIPT.py --trials N` starts one"
        )
        return
    table = new_table()
    for col in ("project", "study", "directions", "trials", "by state", "best #", "best value"):
        table.add_column(col, justify="right" if col in ("trials", "best #") else "left")
    for s in summaries:
        table.add_row(
            escape(s.study.project),
            escape(s.study.name),
            ", ".join(s.study.directions),
            str(s.n_trials),
            ", ".join(f"{_state(k)} {v}" for k, v in sorted(s.counts.items())),
            "" if s.best_number is None else str(s.best_number),
            "" if s.best_value is None else fmt_value(s.best_value),
        )
    out.print(table)


@app.command("show")
def show(
    study: Annotated[str, typer.Argument(help="Study name.")],
    project: Annotated[str | None, PROJECT] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=MAX_TRIALS, help="The last N trials.")
    ] = 50,
    output: Output = OUTPUT,
) -> None:
    """A study: directions, trials by state, the best trial (single objective) or the Pareto
    front (several), and its last trials."""
    import luminary as lm
    from luminary.tune import best_record, pareto_numbers

    store = lm.get_store()
    record, trials = _study_and_trials(store, study, _project(project))
    multi = len(record.directions) > 1
    front = set(pareto_numbers(trials, record.directions)) if multi else set()
    best = None if multi else best_record(trials, record.directions)
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state] = counts.get(t.state, 0) + 1
    shown = trials[-limit:]
    if output is Output.json:
        emit_json(
            {
                "project": record.project,
                "name": record.name,
                "run_id": record.run_id,
                "directions": list(record.directions),
                "counts": counts,
                "best": None if best is None else trial_dict(best),
                "pareto_front": sorted(front),
                "plan": record.system_attrs.get("luminary:plan"),
                "trials": [trial_dict(t, t.number in front) for t in shown],
            }
        )
        return
    out.print(
        f"study [bold]{escape(record.name)}[/] in project {escape(record.project)} "
        f"(run {record.run_id}): {', '.join(record.directions)}; {len(trials)} trials"
        + (
            f" ({', '.join(f'{_state(k)} {v}' for k, v in sorted(counts.items()))})"
            if counts
            else ""
        )
    )
    if best is not None:
        out.print(
            f"best: trial #{best.number} = {escape(_value_text(best))} "
            f"(run {best.run_id}) {escape(_params_text(best))}"
        )
    if multi:
        out.print(f"Pareto front: {len(front)} trial(s), marked * below")
    if not trials:
        out.print(
            f"no trials yet; `luminary tune run SCRIPT.py --study {escape(record.name)}` adds some"
        )
        return
    table = new_table(
        title=None if len(shown) == len(trials) else f"the last {len(shown)} of {len(trials)}"
    )
    for col in ("#", "state", "value" if not multi else "values", "params", "duration", "run"):
        table.add_column(col, justify="right" if col in ("#", "duration") else "left")
    for t in shown:
        mark = "*" if t.number in front else ""
        table.add_row(
            f"{mark}{t.number}",
            _state(t.state),
            escape(_value_text(t)),
            escape(_params_text(t)),
            fmt_duration(_duration(t)),
            t.run_id,
        )
    out.print(table)


@app.command("best")
def best(
    study: Annotated[str, typer.Argument(help="Study name.")],
    project: Annotated[str | None, PROJECT] = None,
    rule: Annotated[
        Rule,
        typer.Option(
            help="lcb: mean minus z standard errors of the seeds (plus, when minimising); "
            "mean: the seeds' mean; value: Optuna's value."
        ),
    ] = Rule.lcb,
    z: Annotated[float, typer.Option(help="Standard errors for lcb (1.0).")] = 1.0,
    output: Output = OUTPUT,
) -> None:
    """The best complete trial, chosen with the seeds' noise in mind (single objective)."""
    import luminary as lm
    from luminary.tune import best_record

    store = lm.get_store()
    record, trials = _study_and_trials(store, study, _project(project))
    if len(record.directions) > 1:
        msg = (
            f"study {record.name!r} has {len(record.directions)} objectives, so no single best "
            f"trial; `luminary tune show {record.name}` marks its Pareto front"
        )
        raise InvalidArgumentError(msg)
    chosen = best_record(trials, record.directions, rule=rule.value, z=z)
    if chosen is None:
        msg = (
            f"study {record.name!r} has no complete trial yet ({len(trials)} trials); "
            f"run some with `luminary tune run SCRIPT.py --study {record.name}`"
        )
        raise InvalidArgumentError(msg)
    if output is Output.json:
        emit_json({"rule": rule.value, "z": z, **trial_dict(chosen)})
        return
    out.print(
        f"best trial of {escape(record.name)} by {rule.value}: #{chosen.number} = "
        f"{escape(_value_text(chosen))} ({record.directions[0]})"
    )
    out.print(f"run {chosen.run_id}")
    for k, p in chosen.params.items():
        out.print(f"  {escape(k)} = {escape(fmt_value(p.external))}")


@app.command("resume")
def resume(
    study: Annotated[str, typer.Argument(help="Study name.")],
    project: Annotated[str | None, PROJECT] = None,
    trials: Annotated[
        int | None,
        typer.Option(
            "--trials", min=1, max=MAX_TRIALS, help="This many more (default: its last target)."
        ),
    ] = None,
    parallel: Annotated[
        int | None, typer.Option(min=1, max=MAX_TRIALS, help="Trial jobs at once.")
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    output: Output = OUTPUT,
) -> None:
    """Go on with a study that ran as jobs after its driver stopped: fail trials whose worker
    died, then submit trial jobs up to its target (or ``--trials`` more)."""
    import luminary as lm

    store = lm.get_store()
    proj = _project(project)
    store.get_study(proj, study)  # the nearest name, before Optuna is imported
    done = lm.tune.resume(
        study, project=proj, n_trials=trials, parallel=parallel, store=store, progress=progress
    )
    _finished(store, proj, done.study_name, output)


@app.command("register-best")
def register_best(
    study: Annotated[str, typer.Argument(help="Study name.")],
    model: Annotated[str, typer.Argument(help="Model to register a new version of.")],
    project: Annotated[str | None, PROJECT] = None,
    path: Annotated[
        str, typer.Option(help="The artifact of the best trial's run holding the model.")
    ] = "model.onnx",
    alias: Annotated[str | None, typer.Option(help="Point this alias at the new version.")] = None,
    rule: Annotated[Rule, typer.Option(help="How the best trial is chosen (see tune best).")] = (
        Rule.lcb
    ),
    output: Output = OUTPUT,
) -> None:
    """Register the model file the best trial logged as the next version of MODEL."""
    import luminary as lm

    store = lm.get_store()
    proj = _project(project)
    store.get_study(proj, study)
    with err.status(f"registering the best trial of {escape(study)} as {escape(model)} …"):
        version = lm.tune.register_best(
            study, model, path=path, project=proj, alias=alias, rule=rule.value, store=store
        )
    if output is Output.json:
        emit_json(
            {
                "ref": version.ref,
                "model": version.model,
                "version": version.version,
                "source_run_id": version.source_run_id,
            }
        )
        return
    out.print(
        f"registered [bold]{escape(version.ref)}[/] from run {version.source_run_id}"
        + (f"; alias {escape(alias)} → {version.version}" if alias else "")
    )


@app.command("run")
def run(
    script: Annotated[
        Path, typer.Argument(help="A Python file defining objective(trial).", dir_okay=False)
    ],
    trials: Annotated[int, typer.Option("--trials", min=1, max=MAX_TRIALS, help="Trials to run.")],
    project: Annotated[str | None, PROJECT] = None,
    study: Annotated[
        str | None, typer.Option(help="Study name (default: the script's study_name, or its stem).")
    ] = None,
    direction: Annotated[
        Direction | None,
        typer.Option(help="Overrides the script's direction (default: minimize)."),
    ] = None,
    parallel: Annotated[int, typer.Option(min=1, max=MAX_TRIALS, help="Trials at once.")] = 1,
    jobs: Annotated[
        bool | None,
        typer.Option(
            "--jobs/--inline",
            help="Each trial a job on the pools, or all in this process (default: jobs when "
            "--parallel > 1 or resources are asked for).",
        ),
    ] = None,
    gpus: Annotated[float, typer.Option(min=0, help="GPUs per trial job (0.25 shares one).")] = 0.0,
    cpus: Annotated[float, typer.Option(min=0, help="CPUs per trial job.")] = 1.0,
    memory: Annotated[str, typer.Option(help="Memory per trial job, e.g. 8G.")] = "0",
    pool: Annotated[str | None, typer.Option(help="Run trial jobs on this pool only.")] = None,
    seeds: Annotated[
        int, typer.Option(min=1, max=1000, help="Repeat each configuration over K seeds.")
    ] = 1,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    output: Output = OUTPUT,
) -> None:
    """Import SCRIPT (``objective(trial)``; optional ``sampler``, ``pruner``,
    ``direction``/``directions``, ``study_name``) and run ``--trials`` more of its study."""
    import luminary as lm

    names = load_script(script)
    objective = names["objective"]
    name = study or names.get("study_name") or script.stem
    if not isinstance(name, str) or not name:
        msg = f"study_name in {str(script)!r} is {name!r}; give a non-empty string"
        raise InvalidArgumentError(msg)
    directions = None if direction is not None else names.get("directions")
    chosen = direction.value if direction is not None else names.get("direction")
    if chosen is None and directions is None:
        chosen = "minimize"
    store = lm.get_store()
    proj = _project(project)
    memory_value: int | str = int(memory) if memory.isdigit() else memory
    done = lm.tune.optimize(
        objective,
        trials,
        study=name,
        project=proj,
        direction=chosen,
        directions=directions,
        sampler=names.get("sampler"),
        pruner=names.get("pruner"),
        parallel=parallel,
        jobs=jobs,
        gpus=gpus,
        cpus=cpus,
        memory=memory_value,
        pool=pool,
        seeds=seeds,
        progress=progress,
        store=store,
    )
    _finished(store, proj, done.study_name, output)


def load_script(script: Path) -> dict[str, Any]:
    """The module-level names of ``script``, run as ``python script`` would (its folder
    first on ``sys.path``); refuses a script without a callable ``objective``."""
    if not script.is_file():
        msg = f"script {str(script)!r} does not exist; give the path of a Python file"
        raise InvalidArgumentError(msg)
    folder = str(script.resolve().parent)
    sys.path.insert(0, folder)
    try:
        names = runpy.run_path(str(script), run_name="__luminary_tune__")
    except SyntaxError as exc:
        msg = f"script {str(script)!r} is not valid Python: {exc.msg} (line {exc.lineno})"
        raise InvalidArgumentError(msg) from None
    except Exception as exc:  # the script's own error, said in one line
        msg = f"script {str(script)!r} failed while loading: {type(exc).__name__}: {exc}"
        raise InvalidArgumentError(msg) from exc
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    if not callable(names.get("objective")):
        msg = (
            f"script {str(script)!r} defines no objective; define `def objective(trial):` "
            "returning the value to optimise (trial.suggest_float(...) for its parameters)"
        )
        raise InvalidArgumentError(msg)
    return names


def _finished(store: Any, project: str, name: str, output: Output) -> None:
    from luminary.tune import best_record

    record, trials = _study_and_trials(store, name, project)
    best = best_record(trials, record.directions)
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state] = counts.get(t.state, 0) + 1
    if output is Output.json:
        emit_json(
            {
                "project": record.project,
                "name": record.name,
                "counts": counts,
                "best": None if best is None else trial_dict(best),
            }
        )
        return
    out.print(
        f"study [bold]{escape(record.name)}[/]: {len(trials)} trials "
        f"({', '.join(f'{_state(k)} {v}' for k, v in sorted(counts.items()))})"
    )
    if best is not None:
        out.print(
            f"best: trial #{best.number} = {escape(_value_text(best))} "
            f"{escape(_params_text(best))} (run {best.run_id})"
        )
    out.print(f"`luminary tune show {escape(record.name)} -p {escape(record.project)}` lists them")
