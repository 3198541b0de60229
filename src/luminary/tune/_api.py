"""The tune SDK: ``lm.tune.storage()``, ``lm.tune.optimize(...)``, ``lm.tune.best(...)``.

An existing Optuna script changes one argument::

    study = optuna.create_study(storage=lm.tune.storage(), study_name="btag-width")

and gets persistence, sharing through a team server, and a run per trial. To run trials as
jobs on shared GPUs, hand the objective to :func:`optimize`::

    lm.tune.optimize(objective, n_trials=500, study="btag-width", parallel=32, gpus=0.25)

Each trial is then a job (local, Ray or Slurm, whichever pool serves it) whose run is the
trial's run: its GPU-hours, CPU-hours and joules are the trial's. A pruned trial's job ends
and its slot goes to the next trial. The driver can die: jobs in flight finish their trials,
and :func:`resume` (``luminary tune resume``) submits the rest.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from luminary._current import get_store
from luminary.errors import InvalidArgumentError, InvalidStateError, NotFoundError
from luminary.tune._noise import current_seed, measure, select

if TYPE_CHECKING:
    import optuna

    from luminary.compute import JobState
    from luminary.registry import ModelVersion
    from luminary.store import Store
    from luminary.tune._optuna import LuminaryStorage

__all__ = [
    "best",
    "current_seed",
    "load_study",
    "optimize",
    "register_best",
    "resume",
    "storage",
    "trial_run_id",
    "wrap_objective",
]

_MANY = 10_000  # active trial jobs of one project looked at, at most
_ACTIVE = ("queued", "starting", "running")

#: Study system attributes where :func:`optimize` keeps how to go on after its driver died.
PLAN_ATTR = "luminary:plan"
_DEFAULT_PROJECT = "default"


def _project(project: str | None) -> str:
    return project or os.environ.get("LUMINARY_PROJECT") or _DEFAULT_PROJECT


def storage(
    project: str | None = None,
    *,
    store: Store | None = None,
    heartbeat_s: float = 2.0,
    grace_s: float | None = None,
    flush_s: float = 0.2,
    failed_trial_callback: Callable[[Any, Any], None] | None = None,
) -> LuminaryStorage:
    """Optuna's storage on the current Luminary store (embedded, or a team server when
    ``LUMINARY_URI`` is set), for studies of ``project`` (default ``LUMINARY_PROJECT`` or
    ``"default"``). See :class:`~luminary.tune.LuminaryStorage` for the options."""
    from luminary.tune._optuna import LuminaryStorage

    return LuminaryStorage(
        store or get_store(),
        _project(project),
        heartbeat_s=heartbeat_s,
        grace_s=grace_s,
        flush_s=flush_s,
        failed_trial_callback=failed_trial_callback,
    )


def load_study(
    name: str,
    *,
    project: str | None = None,
    store: Store | None = None,
    sampler: Any = None,
    pruner: Any = None,
) -> optuna.Study:
    """Study ``name`` of ``project``, as an ``optuna.Study`` on Luminary's storage."""
    import optuna

    return optuna.load_study(
        study_name=name, storage=storage(project, store=store), sampler=sampler, pruner=pruner
    )


def trial_run_id(trial: Any) -> str:
    """The id of the run holding ``trial`` (an ``optuna.Trial`` or ``FrozenTrial`` of a
    study on Luminary's storage): log artifacts and models there."""
    study = getattr(trial, "study", None)
    store = getattr(study, "_storage", None)
    from luminary.tune._optuna import LuminaryStorage

    if isinstance(store, LuminaryStorage):
        return store.run_id_of(trial._trial_id)
    return get_store().get_trial(trial._trial_id).run_id


def wrap_objective(
    objective: Callable[..., Any],
    store: LuminaryStorage,
    *,
    seeds: int = 1,
    energy: bool = True,
) -> Callable[[Any], Any]:
    """``objective`` with the trial's run active while it runs (``lm.log``, ``lm.log_artifact``
    and registered models land on the trial's run; energy is measured per trial), repeated
    over ``seeds`` when more than one."""
    from luminary.tracking import start_run

    def run(trial: Any) -> Any:
        run_id = store.run_id_of(trial._trial_id)
        with start_run(resume=run_id, capture_env=False, energy=energy):
            if seeds > 1:
                return measure(objective, trial, seeds)
            return objective(trial)

    run.__name__ = getattr(objective, "__name__", "objective")
    return run


def optimize(
    objective: Callable[..., Any],
    n_trials: int,
    *,
    study: optuna.Study | str | None = None,
    project: str | None = None,
    direction: str | None = None,
    directions: Sequence[str] | None = None,
    sampler: Any = None,
    pruner: Any = None,
    parallel: int = 1,
    jobs: bool | None = None,
    gpus: float = 0.0,
    gpu_memory: int | str = 0,
    cpus: float = 1.0,
    memory: int | str = 0,
    pool: str | None = None,
    time_limit: float | str | None = None,
    seeds: int = 1,
    timeout: float | None = None,
    catch: Sequence[type[Exception]] = (),
    progress: bool = True,
    store: Store | None = None,
) -> optuna.Study:
    """Run ``n_trials`` more trials of ``study`` (a ``Study``, or the name of one, created when
    missing with ``direction``/``directions``, ``sampler`` and ``pruner``).

    ``jobs`` (default: when ``parallel > 1`` or resources are asked for) runs each trial as
    a job with ``gpus`` (a fraction shares a GPU), ``cpus``, ``memory`` … in ``pool``, at most
    ``parallel`` at once; otherwise trials run here, ``parallel`` threads at a time.
    ``seeds > 1`` repeats each configuration over that many seeds and keeps mean ± standard
    error (see :func:`best`)."""

    n_trials = _check_count("n_trials", n_trials)
    parallel = _check_count("parallel", parallel)
    seeds = _check_count("seeds", seeds)
    store = store or get_store()
    proj = _project(project)
    st = storage(proj, store=store)
    the_study = _study(study, st, direction, directions, sampler, pruner)
    if seeds > 1 and len(the_study.directions) > 1:
        msg = "seeds > 1 needs a single-objective study; repeat inside the objective instead"
        raise InvalidArgumentError(msg)
    if jobs is None:
        jobs = parallel > 1 or gpus > 0 or pool is not None
    if not jobs:
        with _current_store(store):  # the trials' runs are active in this store
            the_study.optimize(
                wrap_objective(objective, st, seeds=seeds),
                n_trials=n_trials,
                n_jobs=parallel,
                timeout=timeout,
                catch=tuple(catch),
                show_progress_bar=progress,
            )
        st.close()
        return the_study
    import cloudpickle  # type: ignore[import-untyped]

    args = (the_study.study_name, proj, objective, the_study.sampler, the_study.pruner, seeds)
    payload = (args, tuple(catch))
    digest = store.blobs.put_bytes(cloudpickle.dumps(payload)).digest
    plan: dict[str, Any] = {
        "target": len(the_study.trials) + _pending_jobs(store, the_study, proj) + n_trials,
        "parallel": parallel,
        "payload": digest,
        "resources": {
            "gpus": gpus,
            "gpu_memory": gpu_memory,
            "cpus": cpus,
            "memory": memory,
            "pool": pool,
            "time_limit": time_limit,
        },
    }
    the_study._storage.set_study_system_attr(the_study._study_id, PLAN_ATTR, plan)
    _drive(store, the_study, proj, plan, n_trials, timeout=timeout, progress=progress)
    st.close()
    return load_study(the_study.study_name, project=proj, store=store)


def resume(
    name: str,
    *,
    project: str | None = None,
    n_trials: int | None = None,
    parallel: int | None = None,
    store: Store | None = None,
    timeout: float | None = None,
    progress: bool = True,
) -> optuna.Study:
    """Go on with study ``name`` after its driver stopped: fail trials whose worker died,
    then submit trial jobs until the study reaches the number of trials its last
    :func:`optimize` asked for (or ``n_trials`` more). Needs a study that ran as jobs: the
    objective is kept in the store, so the script is not needed."""
    store = store or get_store()
    proj = _project(project)
    the_study = load_study(name, project=proj, store=store)
    plan = the_study._storage.get_study_system_attrs(the_study._study_id).get(PLAN_ATTR)
    if not isinstance(plan, dict):
        msg = (
            f"study {name!r} did not run as jobs, so its objective is not in the store; "
            "resume it by running its script again with lm.tune.optimize(objective, ..., "
            f"study={name!r}) (finished trials are kept)"
        )
        raise InvalidStateError(msg)
    st = the_study._storage
    if isinstance(st, _storage_class()):
        st.fail_stale(the_study._study_id)
    if parallel is not None:
        plan["parallel"] = _check_count("parallel", parallel)
    have = len(the_study.trials) + _pending_jobs(store, the_study, proj)
    if n_trials is not None:
        plan["target"] = have + _check_count("n_trials", n_trials)
    the_study._storage.set_study_system_attr(the_study._study_id, PLAN_ATTR, plan)
    todo = max(0, int(plan["target"]) - have)
    _drive(store, the_study, proj, plan, todo, timeout=timeout, progress=progress)
    return load_study(name, project=proj, store=store)


def best(study: optuna.Study, *, rule: str = "lcb", z: float = 1.0) -> optuna.trial.FrozenTrial:
    """The best complete trial, chosen with the noise in mind: for trials repeated over seeds,
    ``rule="lcb"`` (default) ranks by ``mean - z·stderr`` (maximising; ``+`` when
    minimising), ``"mean"`` by the mean; trials without repeats rank by their value. For a
    multi-objective study, use ``study.best_trials`` (the Pareto front)."""
    if len(study.directions) != 1:
        msg = "best() needs a single-objective study; use study.best_trials (the Pareto front)"
        raise InvalidArgumentError(msg)
    maximize = study.direction.name == "MAXIMIZE"
    chosen: optuna.trial.FrozenTrial = select(
        study.get_trials(deepcopy=False), maximize=maximize, rule=rule, z=z
    )
    return chosen


def register_best(
    study: optuna.Study | str,
    model: str,
    *,
    path: str = "model.onnx",
    project: str | None = None,
    alias: str | None = None,
    rule: str = "lcb",
    store: Store | None = None,
) -> ModelVersion:
    """Register the model file the best trial logged (artifact ``path`` of its run) as the
    next version of ``model``; the version's source run is the trial's, whose parent is the
    study's run, so the lineage reads study → trial → model (tags ``tune.study`` and
    ``tune.trial`` on the version's description too)."""
    import tempfile

    from luminary.registry import register_model
    from luminary.tracking import download_artifacts

    store = store or get_store()
    the_study = load_study(study, project=project, store=store) if isinstance(study, str) else study
    trial = best(the_study, rule=rule)
    run_id = _run_of(the_study, trial, store)
    names = {a.path for a in store.list_artifacts(run_id)}
    if path not in names:
        shown = ", ".join(sorted(names)[:8]) or "none"
        msg = (
            f"the best trial (#{trial.number}, run {run_id}) has no artifact {path!r} "
            f"(it has: {shown}); log the model in the objective (lm.log_artifact(file)) or "
            "name the artifact with path=..."
        )
        raise NotFoundError(msg)
    run = store.get_run(run_id)
    with tempfile.TemporaryDirectory(prefix="luminary-best-") as tmp:
        (local,) = download_artifacts(run_id, path, dest=tmp)
        return register_model(
            model,
            local,
            run=run_id,
            project=run.project,
            alias=alias,
            description=(
                f"best trial #{trial.number} of study {the_study.study_name!r} "
                f"(value {trial.values[0]:.6g}, rule {rule})"
            ),
        )


@contextlib.contextmanager
def _current_store(store: Store) -> Iterator[None]:
    """``store`` as the SDK's current store while a call that was given it runs (the trial's
    run is made active through the SDK, which reads the current store)."""
    from luminary._current import set_store

    before = get_store()
    if before is store:
        yield
        return
    set_store(store)
    try:
        yield
    finally:
        set_store(before)


# -- driving trial jobs -------------------------------------------------------------------
def _drive(
    store: Store,
    study: optuna.Study,
    project: str,
    plan: dict[str, Any],
    n_trials: int,
    *,
    timeout: float | None,
    progress: bool,
) -> None:
    """Keep at most ``plan["parallel"]`` trial jobs in flight until ``n_trials`` have ended."""
    from luminary.compute import JobState, jobs

    resources = plan["resources"]
    digest = plan["payload"]
    import cloudpickle

    # the study's own objective, kept by optimize() in the study's project
    (args, catch) = cloudpickle.loads(store.blobs.read_bytes(digest))
    from luminary.tune._worker import run_trial

    in_flight: dict[str, Any] = {}
    for job in store.list_jobs(project, [JobState(s) for s in _ACTIVE], limit=_MANY):
        if job.spec.tags.get("tune.study") == study.study_name:
            in_flight[job.id] = job  # from an earlier driver: waited for, and counted there
    submitted = done = failures = lost = 0
    deadline = None if timeout is None else time.monotonic() + timeout
    bar = _progress(progress, n_trials, study.study_name)
    parent = _study_run(store, study, project)
    try:
        while submitted < n_trials or in_flight:
            while len(in_flight) < int(plan["parallel"]) and submitted < n_trials:
                handle = jobs.submit(
                    run_trial,
                    *args,
                    catch,
                    project=project,
                    gpus=resources["gpus"],
                    gpu_memory=resources["gpu_memory"],
                    cpus=resources["cpus"],
                    memory=resources["memory"],
                    pool=resources["pool"],
                    time_limit=resources["time_limit"],
                    name=f"{study.study_name} trial",
                    tags={"tune.study": study.study_name},
                    parent_run=parent,
                    store=store,
                )
                in_flight[handle.id] = handle
                submitted += 1
            ended = _wait_any(store, in_flight, deadline)
            if ended is None:  # timeout: the jobs in flight go on and finish their trials
                return
            # a job that ended with its trial still running died with it: fail it now
            _fail_trials_of(study, [run_id for _, _, run_id in ended])
            with_trial = _runs_with_trials(study)
            for job_id, state, run_id in ended:
                in_flight.pop(job_id, None)
                done += 1
                if state is not JobState.SUCCEEDED:
                    failures += 1
                    if failures >= 3 and failures == done:
                        msg = (
                            f"the first {failures} trial jobs of study {study.study_name!r} "
                            f"failed; see `luminary jobs logs {job_id}`"
                        )
                        raise InvalidStateError(msg)
                if with_trial is not None and run_id not in with_trial:
                    # the job ended before it made its trial (lost with its node, say): the
                    # study is owed one more, so another job goes in its place
                    lost += 1
                    if lost > max(8, n_trials):
                        msg = (
                            f"{lost} trial jobs of study {study.study_name!r} ended without "
                            f"making their trial; see `luminary jobs logs {job_id}`"
                        )
                        raise InvalidStateError(msg)
                    if submitted > 0:
                        submitted -= 1
                    else:
                        n_trials += 1  # one adopted from an earlier driver
                    continue
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()


def _runs_with_trials(study: optuna.Study) -> set[str] | None:
    """The runs that hold a trial of ``study`` (``None`` off Luminary's storage)."""
    st = study._storage
    if not isinstance(st, _storage_class()):
        return None
    return st.runs_with_trials(study._study_id)


def _fail_trials_of(study: optuna.Study, run_ids: list[str]) -> None:
    from luminary.tune._optuna import LuminaryStorage

    st = study._storage
    if run_ids and isinstance(st, LuminaryStorage):
        st.fail_stale(study._study_id, run_ids=run_ids, reason="its job ended")


def _wait_any(
    store: Store, in_flight: dict[str, Any], deadline: float | None
) -> list[tuple[str, JobState, str]] | None:
    """The jobs in flight that have ended (waiting until one has), with their runs; ``None``
    at the deadline."""
    version = None
    while True:
        ended = []
        for job_id in list(in_flight):
            job = store.get_job(job_id)
            if job.state.done:
                ended.append((job_id, job.state, job.run_id))
        if ended or not in_flight:
            return ended
        if deadline is not None and time.monotonic() >= deadline:
            return None
        start = time.monotonic()
        while time.monotonic() - start < 1.0:
            now = store.queue_version()
            if version is not None and now != version:
                break
            version = now
            time.sleep(0.05)


def _pending_jobs(store: Store, study: optuna.Study, project: str) -> int:
    """Trial jobs of ``study`` queued or starting, which have not made their trial yet."""
    from luminary.compute import JobState

    trial_runs = {r.run_id for r in store.read_trials(study._study_id)}
    return sum(
        1
        for job in store.list_jobs(project, [JobState(s) for s in _ACTIVE], limit=_MANY)
        if job.spec.tags.get("tune.study") == study.study_name and job.run_id not in trial_runs
    )


def _study_run(store: Store, study: optuna.Study, project: str) -> str:
    return store.get_study(project, study.study_name).run_id


def _study(
    study: optuna.Study | str | None,
    st: LuminaryStorage,
    direction: str | None,
    directions: Sequence[str] | None,
    sampler: Any,
    pruner: Any,
) -> optuna.Study:
    import optuna

    if isinstance(study, optuna.Study):
        return study
    return optuna.create_study(
        storage=st,
        study_name=study,
        direction=direction,  # type: ignore[arg-type]
        directions=directions,  # type: ignore[arg-type]
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )


def _storage_class() -> type[LuminaryStorage]:
    from luminary.tune._optuna import LuminaryStorage

    return LuminaryStorage


def _run_of(study: optuna.Study, trial: Any, store: Store) -> str:
    from luminary.tune._optuna import LuminaryStorage

    st = study._storage
    if isinstance(st, LuminaryStorage):
        return st.run_id_of(trial._trial_id)
    return store.get_trial(trial._trial_id).run_id


def _check_count(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value > 10_000_000:
        msg = f"{field}={value!r} is not valid; give a whole number from 1 to 10000000"
        raise InvalidArgumentError(msg)
    return value


def _progress(enabled: bool, total: int, name: str) -> Any:
    if not enabled or total < 2:
        return None
    try:
        from tqdm.auto import tqdm  # type: ignore[import-untyped]
    except ImportError:  # Optuna brings tqdm; without it, no bar
        return None
    return tqdm(total=total, desc=f"study {name}", unit="trial")
