"""Tune: Luminary's Optuna storage against Optuna's own, and what tuning on it buys.

Parts (``--part``, repeatable; ``all`` runs every one). Each prints a table, its figures and
a PASS/MISS per target; ``--json FILE`` writes them all; ``--quick`` is a smoke run.

- ``storage`` — process CPU time (every thread of the process, not wall time) per trial of
  ``ask`` + 2 ``suggest`` + 3 ``report`` + ``tell``, with ``RandomSampler(seed)`` and
  ``NopPruner`` so that the sampler and pruner cost next to nothing and the storage is what
  is measured. Storages: Luminary's (``lm.tune.storage`` on an embedded ``SqlStore`` in a
  temporary folder, default settings: SQLite WAL, ``synchronous=NORMAL``; and the same at
  ``sqlite_sync="full"``, the durability Optuna's RDB storage has on SQLite, whose rollback
  journal runs at SQLite's default ``synchronous=FULL``), Optuna's ``RDBStorage("sqlite:///…")``,
  ``JournalStorage(JournalFileBackend)`` and ``InMemoryStorage`` (the floor: Optuna's own
  work). Each storage runs ``--trials`` trials (10,000) in a fresh subprocess, so imports
  and caches never mix; the per-trial cost is the CPU time of a window of 100 trials around
  trial 100 (trials 50-149) and of the last 100 trials before ``--trials``. A storage that
  has not reached ``--trials`` after ``--cap-s`` seconds (Optuna's RDB on this machine) stops
  there and its late window is its last 100 trials, at the count it reached (printed).
  ``--repeats`` rounds, storages in a rotated order each round; figures are medians.
- ``concurrency`` — ``--procs`` processes (32) on one study in PostgreSQL
  (``--pg URL`` or ``LUMINARY_TEST_POSTGRES_URL``; a fresh schema, dropped afterwards), each
  ``--per-proc`` trials of ask/tell with ``RandomSampler``, all starting together. Checks: no
  error in any process, trial numbers exactly ``0 … total-1``, every trial complete and held
  by its own run, a child of the study's run.
- ``noise`` — a synthetic objective: ``--configs`` configurations with known true values
  (evenly spaced, so the ranking is known) and Gaussian seed noise of ``--sigma`` (in units
  of the spacing of the true values). Each repetition measures every configuration once
  (one seed) and three times (k=3); single seed picks the best measured value, k=3 picks with
  ``lm.tune.select(rule="lcb")`` (and, for comparison, ``rule="mean"``). Reported: how often
  the chosen configuration is truly in the top 5. ``--noise-reps`` repetitions on trials
  built in memory, plus ``--noise-studies`` repetitions as real studies through
  ``lm.tune.optimize(seeds=...)`` and ``lm.tune.best`` on Luminary's storage (temporary
  SQLite). Fixed RNG seed ``--seed``; half and twice that noise are printed too.
- ``target`` — CPU-seconds (this process) until a study's best value reaches a fixed
  validation AUC on the demo's DeepSets tagger (``luminary.demo``: synthetic jets,
  NumPy training), TPE + ``SuccessiveHalvingPruner`` (ASHA) against random search without
  pruning; trials inline (``lm.tune.optimize(jobs=False)``) on Luminary's storage (temporary
  SQLite); median over ``--target-seeds`` seeds; a study that has not reached the target
  after ``--target-cap`` trials counts as its CPU at that point (printed as ``>``).

    .venv/bin/python benchmarks/tune.py --part all --json out.json
    .venv/bin/python benchmarks/tune.py --part storage --trials 10000 --repeats 3
    .venv/bin/python benchmarks/tune.py --part all --quick
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import math
import os
import platform
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

STORAGES = ("luminary", "luminary-full", "journal", "rdb", "memory")
WINDOW = 100
Verdicts = list[tuple[str, bool, str]]


def _quiet() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("luminary").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*Heartbeat of storage.*")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _load() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


# -- storage ---------------------------------------------------------------------------------
@contextlib.contextmanager
def _storage(kind: str, folder: Path) -> Iterator[Any]:
    import optuna

    if kind.startswith("luminary"):
        import luminary as lm
        from luminary.store import SqlStore

        sync = "FULL" if kind == "luminary-full" else "NORMAL"
        store = SqlStore(
            f"sqlite:///{folder / 'luminary.db'}", str(folder / "blobs"), sqlite_sync=sync
        )
        st = lm.tune.storage("bench", store=store)
        try:
            yield st
        finally:
            st.close()
            store.close()
    elif kind == "rdb":
        yield optuna.storages.RDBStorage(f"sqlite:///{folder / 'optuna.db'}")
    elif kind == "journal":
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        yield JournalStorage(JournalFileBackend(str(folder / "journal.log")))
    else:
        yield optuna.storages.InMemoryStorage()


def child_storage(kind: str, trials: int, cap_s: float, seed: int) -> dict[str, Any]:
    """Runs in its own process: ``trials`` trials on storage ``kind``; the process CPU time
    after each trial."""
    import optuna

    _quiet()
    with (
        tempfile.TemporaryDirectory(prefix="luminary-tune-bench-") as tmp,
        _storage(kind, Path(tmp)) as st,
    ):
        study = optuna.create_study(
            storage=st,
            study_name="bench",
            sampler=optuna.samplers.RandomSampler(seed=seed),
            pruner=optuna.pruners.NopPruner(),
        )
        cpu = [time.process_time()]
        wall = [time.perf_counter()]
        deadline = wall[0] + cap_s
        for _ in range(trials):
            trial = study.ask()
            x = trial.suggest_float("x", -1.0, 1.0)
            n = trial.suggest_int("n", 1, 64, log=True)
            for step in range(3):
                trial.report(x * step + n, step)
            study.tell(trial, x * x + n)
            cpu.append(time.process_time())
            wall.append(time.perf_counter())
            if wall[-1] > deadline and len(cpu) > 2 * WINDOW + 1:
                break
    reached = len(cpu) - 1

    def per_trial(series: list[float], lo: int) -> float:
        return (series[lo + WINDOW] - series[lo]) / WINDOW * 1e3

    early = min(50, max(0, reached - WINDOW))
    return {
        "kind": kind,
        "reached": reached,
        "early_ms": per_trial(cpu, early),
        "late_ms": per_trial(cpu, reached - WINDOW),
        "early_wall_ms": per_trial(wall, early),
        "late_wall_ms": per_trial(wall, reached - WINDOW),
        "total_cpu_s": cpu[-1] - cpu[0],
        "total_wall_s": wall[-1] - wall[0],
    }


def _child(args: list[str], timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def part_storage(args: argparse.Namespace) -> tuple[dict[str, Any], Verdicts]:
    kinds = [k for k in STORAGES if k not in args.skip]
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    for rnd in range(args.repeats):
        order = kinds[rnd % len(kinds) :] + kinds[: rnd % len(kinds)]
        for kind in order:
            if kind == "rdb" and rnd >= args.rdb_repeats:
                continue
            cap = args.cap_s
            child = ["--child", "storage", kind, str(args.trials), str(cap), str(args.seed + rnd)]
            got = _child(child, timeout=cap * 3 + 600)
            runs[kind].append(got)
            print(
                f"  round {rnd + 1} {kind:14} {got['reached']:6} trials  "
                f"{got['early_ms']:7.3f} / {got['late_ms']:7.3f} ms CPU/trial  "
                f"(load {os.getloadavg()[0]:.2f})",
                flush=True,
            )
    med = {
        k: {f: _median([r[f] for r in rs]) for f in rs[0] if f != "kind"}
        for k, rs in runs.items()
        if rs
    }
    floor = med.get("memory", {"early_ms": 0.0, "late_ms": 0.0})
    lum = med["luminary"]
    print(
        f"\n  {'storage':14} {'trials':>7} {'CPU ms/trial @~100':>19} {'@last 100':>10} "
        f"{'overhead @100':>14} {'@last':>8} {'growth':>7} {'x Luminary @last':>17} "
        f"{'wall ms @last':>14}"
    )
    out: dict[str, Any] = {"trials": args.trials, "repeats": args.repeats}
    for kind, m in med.items():
        over_e, over_l = m["early_ms"] - floor["early_ms"], m["late_ms"] - floor["late_ms"]
        growth = m["late_ms"] / m["early_ms"]
        ratio = m["late_ms"] / lum["late_ms"]
        print(
            f"  {kind:14} {int(m['reached']):7} {m['early_ms']:19.3f} {m['late_ms']:10.3f} "
            f"{over_e:14.3f} {over_l:8.3f} {growth:7.2f} {ratio:17.1f} {m['late_wall_ms']:14.3f}"
        )
        out[kind] = {**m, "overhead_early_ms": over_e, "overhead_late_ms": over_l}
        out[kind]["growth"] = growth
        out[kind]["runs"] = len(runs[kind])
    verdicts: Verdicts = [
        (
            f"Luminary <= 2 ms CPU/trial at {args.trials} trials",
            lum["late_ms"] <= 2.0,
            f"{lum['late_ms']:.2f} ms",
        ),
        (
            "Luminary growth (last 100 / ~100) <= 1.5",
            lum["late_ms"] / lum["early_ms"] <= 1.5,
            f"{lum['late_ms'] / lum['early_ms']:.2f}",
        ),
    ]
    for kind, times in (("journal", 5.0), ("rdb", 20.0)):
        if kind in med:
            other = med[kind]
            # compare at the count the anchor reached: Luminary's late figure is at --trials,
            # which is at least as many trials, so the ratio never flatters Luminary
            ratio = other["late_ms"] / lum["late_ms"]
            at = int(other["reached"])
            verdicts.append(
                (
                    f"Luminary >= {times:g}x better than {kind} (CPU/trial, {kind} at {at} trials)",
                    ratio >= times,
                    f"{ratio:.1f}x",
                )
            )
            ratio_o = (other["late_ms"] - floor["late_ms"]) / max(
                1e-9, out["luminary"]["overhead_late_ms"]
            )
            out[kind]["overhead_ratio_vs_luminary"] = ratio_o
    return out, verdicts


# -- concurrency -----------------------------------------------------------------------------
def _pg_url(args: argparse.Namespace) -> str | None:
    return args.pg or os.environ.get("LUMINARY_TEST_POSTGRES_URL")


def child_concurrency(url: str, study: str, per_proc: int, go: str, seed: int) -> dict[str, Any]:
    import optuna

    import luminary as lm
    from luminary.store import SqlStore

    _quiet()
    errors: list[str] = []
    numbers: list[int] = []
    with tempfile.TemporaryDirectory(prefix="luminary-tune-conc-") as tmp:
        store = SqlStore(url, str(Path(tmp) / "blobs"))
        st = lm.tune.storage("bench", store=store)
        the_study = optuna.load_study(
            study_name=study, storage=st, sampler=optuna.samplers.RandomSampler(seed=seed)
        )
        Path(f"{go}.ready.{seed}").touch()
        while not Path(go).exists():
            time.sleep(0.01)
        cpu0, t0 = time.process_time(), time.perf_counter()
        for _ in range(per_proc):
            try:
                trial = the_study.ask()
                x = trial.suggest_float("x", -1.0, 1.0)
                trial.report(x, 0)
                the_study.tell(trial, x * x)
                numbers.append(trial.number)
            except Exception as exc:  # every error is counted and shown
                errors.append(f"{type(exc).__name__}: {exc}"[:300])
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        st.close()
        store.close()
    return {"errors": errors, "numbers": numbers, "cpu_s": cpu, "wall_s": wall}


@contextlib.contextmanager
def _fresh_schema(base: str) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a new schema, dropped afterwards (as tests do)."""
    import sqlalchemy as sa

    schema = f"lm_bench_{secrets.token_hex(6)}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def part_concurrency(args: argparse.Namespace) -> tuple[dict[str, Any], Verdicts]:
    import optuna

    import luminary as lm
    from luminary.store import SqlStore

    _quiet()
    base = _pg_url(args)
    if not base:
        print("  skipped: give --pg URL or set LUMINARY_TEST_POSTGRES_URL")
        return {"skipped": True}, [("PostgreSQL available", False, "no URL")]
    procs, per = args.procs, args.per_proc
    with _fresh_schema(base) as url, tempfile.TemporaryDirectory() as tmp:
        store = SqlStore(url, str(Path(tmp) / "blobs"))  # migrates once, before the children
        st = lm.tune.storage("bench", store=store)
        study = optuna.create_study(storage=st, study_name="conc", direction="minimize")
        go = Path(tmp) / "go"
        script = str(Path(__file__).resolve())
        children = [
            subprocess.Popen(
                [
                    sys.executable,
                    script,
                    "--child",
                    "concurrency",
                    url,
                    "conc",
                    str(per),
                    str(go),
                    str(args.seed + i),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(procs)
        ]
        # start together once every child has imported and opened the study
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and any(c.poll() is None for c in children):
            if len(list(Path(tmp).glob("go.ready.*"))) == procs:
                break
            time.sleep(0.1)
        t0 = time.perf_counter()
        go.touch()
        results, crashed = [], []
        for c in children:
            out, err = c.communicate(timeout=900)
            if c.returncode != 0:
                crashed.append(err[-1500:])
            else:
                results.append(json.loads(out.strip().splitlines()[-1]))
        wall = time.perf_counter() - t0
        trials = store.read_trials(study._study_id)
        study_run = store.get_study("bench", "conc").run_id
        numbers = sorted(t.number for t in trials)
        total = procs * per
        errors = [e for r in results for e in r["errors"]]
        complete = sum(1 for t in trials if t.state == "complete")
        run_ids = {t.run_id for t in trials}
        bad_runs = 0
        for t in trials:
            run = store.get_run(t.run_id)
            if run.parent_id != study_run:
                bad_runs += 1
        seen = sorted(n for r in results for n in r["numbers"])
        st.close()
        store.close()
    dupes = len(numbers) - len(set(numbers))
    out = {
        "processes": procs,
        "trials_per_process": per,
        "trials_expected": total,
        "trials_stored": len(trials),
        "trials_complete": complete,
        "errors": len(errors) + len(crashed),
        "duplicate_numbers": dupes,
        "numbers_are_0_to_total": numbers == list(range(total)),
        "workers_saw_same_numbers": seen == numbers,
        "distinct_runs": len(run_ids),
        "runs_not_child_of_study": bad_runs,
        "wall_s": wall,
        "trials_per_s": total / wall,
        "median_cpu_ms_per_trial": _median([r["cpu_s"] / per * 1e3 for r in results]),
    }
    for key, value in out.items():
        print(f"  {key:28} {value:.4g}" if isinstance(value, float) else f"  {key:28} {value}")
    for e in (errors + crashed)[:5]:
        print(f"  error: {e}")
    ok = (
        not errors
        and not crashed
        and numbers == list(range(total))
        and complete == total
        and len(run_ids) == total
        and bad_runs == 0
    )
    shown = f"{len(errors) + len(crashed)} errors, {len(trials)}/{total} trials, {dupes} dupes"
    return out, [
        (
            f"{procs} processes x {per} trials on PostgreSQL: no error, no gap, no "
            "duplicate, a run per trial",
            ok,
            shown,
        )
    ]


# -- noise -----------------------------------------------------------------------------------
SEEDS_ATTR = "luminary:seed_values"  # what lm.tune.optimize(seeds=k) keeps; checked below


def _truth(configs: int) -> list[float]:
    """True values, evenly spaced one unit apart: configuration ``c`` is worth ``c``."""
    return [float(c) for c in range(configs)]


def _noise_memory(configs: int, sigma: float, reps: int, seed: int) -> dict[str, float]:
    import optuna

    import luminary as lm

    rng = random.Random(seed)
    truth = _truth(configs)
    top = set(range(configs - 5, configs))
    dist = {"c": optuna.distributions.IntDistribution(0, configs - 1)}
    hits = {"single": 0, "lcb": 0, "mean": 0}
    for _ in range(reps):
        one, three = [], []
        for c in range(configs):
            draws = [truth[c] + rng.gauss(0, sigma) for _ in range(3)]
            one.append(
                optuna.trial.create_trial(params={"c": c}, distributions=dist, value=draws[0])
            )
            three.append(
                optuna.trial.create_trial(
                    params={"c": c},
                    distributions=dist,
                    value=statistics.fmean(draws),
                    user_attrs={SEEDS_ATTR: draws},
                )
            )
        for t in (one, three):
            for i, trial in enumerate(t):
                trial.number = i
        hits["single"] += lm.tune.select(one, maximize=True, rule="value").params["c"] in top
        hits["lcb"] += lm.tune.select(three, maximize=True, rule="lcb").params["c"] in top
        hits["mean"] += lm.tune.select(three, maximize=True, rule="mean").params["c"] in top
    return {k: v / reps for k, v in hits.items()}


def _noise_studies(configs: int, sigma: float, reps: int, seed: int) -> dict[str, float]:
    import optuna

    import luminary as lm
    from luminary.store import SqlStore

    truth = _truth(configs)
    top = set(range(configs - 5, configs))
    hits = {"single": 0, "lcb": 0}
    with tempfile.TemporaryDirectory(prefix="luminary-tune-noise-") as tmp:
        store = SqlStore(f"sqlite:///{tmp}/l.db", f"{tmp}/blobs")
        lm.set_store(store)  # the trial's run is resumed through the current store
        for rep in range(reps):
            rng = random.Random(seed * 1000 + rep)

            def objective(trial: Any, seed: int = 0, rng: random.Random = rng) -> float:
                c = trial.suggest_int("c", 0, configs - 1)
                return truth[c] + rng.gauss(0, sigma)

            grid = optuna.samplers.GridSampler({"c": list(range(configs))}, seed=rep)
            for arm, k in (("single", 1), ("lcb", 3)):
                study = lm.tune.optimize(
                    objective,
                    configs,
                    study=f"noise-{rep}-{arm}",
                    direction="maximize",
                    sampler=grid,
                    seeds=k,
                    jobs=False,
                    progress=False,
                    store=store,
                    project="bench",
                )
                if k > 1 and SEEDS_ATTR not in study.trials[0].user_attrs:
                    raise RuntimeError(f"repeated trials no longer keep {SEEDS_ATTR!r}")
                rule = "lcb" if k > 1 else "value"
                hits[arm] += lm.tune.best(study, rule=rule).params["c"] in top
        lm.set_store(None)
        store.close()
    return {k: v / reps for k, v in hits.items()}


def part_noise(args: argparse.Namespace) -> tuple[dict[str, Any], Verdicts]:
    _quiet()
    out: dict[str, Any] = {"configs": args.configs, "sigma": args.sigma, "reps": args.noise_reps}
    print(
        f"  {args.configs} configurations, true values 0..{args.configs - 1} (spacing 1); "
        f"top 5 = {args.configs - 5}..{args.configs - 1}; seed noise N(0, sigma)"
    )
    print(f"  {'sigma':>6} {'reps':>6} {'single seed':>12} {'k=3 LCB':>8} {'k=3 mean':>9}")
    for sigma in sorted({args.sigma / 2, args.sigma, args.sigma * 2}):
        got = _noise_memory(args.configs, sigma, args.noise_reps, args.seed)
        print(
            f"  {sigma:6.2f} {args.noise_reps:6} {got['single']:12.1%} {got['lcb']:8.1%} "
            f"{got['mean']:9.1%}"
        )
        if sigma == args.sigma:
            out |= {f"memory_{k}": v for k, v in got.items()}
    studies = _noise_studies(args.configs, args.sigma, args.noise_studies, args.seed)
    print(
        f"  {args.sigma:6.2f} {args.noise_studies:6} {studies['single']:12.1%} "
        f"{studies['lcb']:8.1%} {'':>9}  (real studies: lm.tune.optimize + lm.tune.best)"
    )
    out |= {f"studies_{k}": v for k, v in studies.items()}
    out["studies_reps"] = args.noise_studies
    return out, [
        (
            "k=3 LCB picks a true top-5 configuration >= 90 %",
            out["memory_lcb"] >= 0.9,
            f"{out['memory_lcb']:.1%} (real studies {studies['lcb']:.0%})",
        ),
        (
            "single seed does so <= 60 % (expected)",
            out["memory_single"] <= 0.6,
            f"{out['memory_single']:.1%} (real studies {studies['single']:.0%})",
        ),
    ]


# -- time to target --------------------------------------------------------------------------
def _target_run(
    arm: str, seed: int, target: float, cap: int, data: Any, store: Any, epochs: int
) -> dict[str, Any]:
    import optuna

    import luminary as lm
    from luminary.demo import CLASSES, FEATURES, DeepSets, train

    train_set, val_set = data

    def objective(trial: optuna.Trial) -> float:
        hidden = trial.suggest_categorical("hidden", [8, 16, 32, 64])
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        batch = trial.suggest_categorical("batch_size", [64, 128, 256])
        model = DeepSets.init(len(FEATURES), len(CLASSES), hidden, seed=trial.number)

        def on_epoch(epoch: int, m: dict[str, float]) -> None:
            trial.report(m["val_auc"], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned

        result = train(
            model,
            train_set,
            val_set,
            epochs=epochs,
            batch_size=batch,
            lr=lr,
            seed=trial.number,
            on_epoch=on_epoch,
        )
        return result.val_auc

    if arm == "tpe+asha":
        # a seed of its own: with the same one, its random start-up trials would be random search's
        sampler: Any = optuna.samplers.TPESampler(seed=seed + 1000, n_startup_trials=5)
        pruner: Any = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    else:
        sampler, pruner = optuna.samplers.RandomSampler(seed=seed), optuna.pruners.NopPruner()
    study = optuna.create_study(
        storage=lm.tune.storage("bench", store=store),
        study_name=f"target-{arm}-{seed}",
        direction="maximize",
        sampler=sampler,
        pruner=pruner,
    )
    cpu0 = time.process_time()
    best = -math.inf
    for n in range(1, cap + 1):
        lm.tune.optimize(
            objective, 1, study=study, jobs=False, progress=False, store=store, project="bench"
        )
        last = study.trials[-1]
        if last.state.name == "COMPLETE" and last.value is not None:
            best = max(best, last.value)
        if best >= target:
            return {"cpu_s": time.process_time() - cpu0, "trials": n, "reached": True}
    return {"cpu_s": time.process_time() - cpu0, "trials": cap, "reached": False, "best": best}


def part_target(args: argparse.Namespace) -> tuple[dict[str, Any], Verdicts]:
    import luminary as lm
    from luminary.demo import make_jets, train_test_split
    from luminary.store import SqlStore

    _quiet()
    data = train_test_split(make_jets(args.jets, seed=0), 0.25, seed=0)
    arms = ("tpe+asha", "random")
    got: dict[str, list[dict[str, Any]]] = {a: [] for a in arms}
    print(
        f"  {args.jets} jets (75 % train), {args.epochs} epochs, target val AUC "
        f"{args.target_auc}, cap {args.target_cap} trials"
    )
    with tempfile.TemporaryDirectory(prefix="luminary-tune-target-") as tmp:
        store = SqlStore(f"sqlite:///{tmp}/l.db", f"{tmp}/blobs")
        lm.set_store(store)  # the trial's run is resumed through the current store
        for seed in range(args.target_seeds):
            for arm in arms if seed % 2 == 0 else arms[::-1]:
                r = _target_run(
                    arm, seed, args.target_auc, args.target_cap, data, store, args.epochs
                )
                got[arm].append(r)
                mark = "" if r["reached"] else f"> (not reached, best {r['best']:.4f})"
                print(
                    f"  seed {seed} {arm:9} {r['cpu_s']:7.2f} CPU-s  {r['trials']:3} trials {mark}",
                    flush=True,
                )
        lm.set_store(None)
        store.close()
    out: dict[str, Any] = {"target_auc": args.target_auc, "seeds": args.target_seeds}
    for arm in arms:
        out[f"{arm}_median_cpu_s"] = _median([r["cpu_s"] for r in got[arm]])
        out[f"{arm}_median_trials"] = _median([float(r["trials"]) for r in got[arm]])
        out[f"{arm}_reached"] = sum(r["reached"] for r in got[arm])
    speedup = out["random_median_cpu_s"] / out["tpe+asha_median_cpu_s"]
    out["speedup"] = speedup
    print(f"\n  {'arm':10} {'median CPU-s':>13} {'median trials':>14} {'reached':>8}")
    for arm in arms:
        print(
            f"  {arm:10} {out[f'{arm}_median_cpu_s']:13.2f} {out[f'{arm}_median_trials']:14.0f} "
            f"{out[f'{arm}_reached']:>4}/{args.target_seeds}"
        )
    ratio = 1.0 / speedup
    censored = out["random_reached"] < args.target_seeds
    note = " (random's median is a lower bound: it missed the target within the cap)"
    return out, [
        (
            "TPE+ASHA reaches the target AUC with <= 0.5x the CPU of random search",
            ratio <= 0.5,
            f"{ratio:.2f}x" + (note if censored else ""),
        )
    ]


PARTS: dict[str, Callable[[argparse.Namespace], tuple[dict[str, Any], Verdicts]]] = {
    "storage": part_storage,
    "concurrency": part_concurrency,
    "noise": part_noise,
    "target": part_target,
}


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        what, rest = sys.argv[2], sys.argv[3:]
        if what == "storage":
            got = child_storage(rest[0], int(rest[1]), float(rest[2]), int(rest[3]))
        else:
            got = child_concurrency(rest[0], rest[1], int(rest[2]), rest[3], int(rest[4]))
        print(json.dumps(got))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--part", action="append", choices=[*PARTS, "all"], help="default: all")
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--trials", type=int, default=10_000, help="storage: trials per storage")
    parser.add_argument("--cap-s", type=float, default=300.0, help="storage: wall cap per run")
    parser.add_argument("--repeats", type=int, default=3, help="storage: rounds")
    parser.add_argument("--rdb-repeats", type=int, default=1, help="storage: rounds with RDB")
    parser.add_argument("--skip", action="append", default=[], choices=STORAGES)
    parser.add_argument("--pg", help="concurrency: PostgreSQL URL")
    parser.add_argument("--procs", type=int, default=32)
    parser.add_argument("--per-proc", type=int, default=25)
    parser.add_argument("--configs", type=int, default=30)
    parser.add_argument("--sigma", type=float, default=6.0, help="noise: seed noise / spacing")
    parser.add_argument("--noise-reps", type=int, default=2000)
    parser.add_argument("--noise-studies", type=int, default=20)
    parser.add_argument("--jets", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--target-auc", type=float, default=0.942)
    parser.add_argument("--target-seeds", type=int, default=7)
    parser.add_argument("--target-cap", type=int, default=80)
    args = parser.parse_args()
    if args.quick:
        args.trials, args.repeats, args.cap_s = 400, 1, 60.0
        args.procs, args.per_proc = 4, 5
        args.noise_reps, args.noise_studies = 200, 2
        args.target_seeds, args.target_cap, args.jets, args.epochs = 1, 4, 1000, 2
    parts = list(args.part or ["all"])
    parts = list(PARTS) if "all" in parts else parts
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    import optuna

    print(
        f"# {started} · {platform.node()} · {platform.processor() or platform.machine()} · "
        f"{os.cpu_count()} logical CPUs · loadavg {_load()} · Python {platform.python_version()}"
        f" · Optuna {optuna.__version__}\n# {' '.join([Path(sys.executable).name, *sys.argv])}"
    )
    results: dict[str, Any] = {"started": started, "command": sys.argv, "parts": {}}
    for part in parts:
        print(f"\n[{part}] (loadavg {_load()})", flush=True)
        t0 = time.perf_counter()
        figures, verdicts = PARTS[part](args)
        for target, ok, shown in verdicts:
            print(f"  {'PASS' if ok else 'MISS'}  {target}: {shown}")
        print(f"  ({time.perf_counter() - t0:.0f} s, loadavg {_load()})", flush=True)
        results["parts"][part] = {
            **figures,
            "targets": {t: {"pass": ok, "measured": shown} for t, ok, shown in verdicts},
        }
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
