"""An unchanged Optuna script at scale: 500 trials, 32 at a time, as jobs on GPU quarters, its
driver killed with SIGKILL half way, resumed, and the best trial's model registered.

    python benchmarks/tune_scale.py [--trials 500] [--parallel 32] [--kill-after 150]

Runs in a fresh LUMINARY_HOME (embedded SQLite, the local pool declared with 8 logical GPUs
and 32 logical CPUs, so that 32 quarter-GPU trial jobs fit at once). The script under test is
written out as ``study.py``: plain Optuna with ``storage=lm.tune.storage()``; the driver is
``luminary tune run study.py --trials N --parallel P --gpus 0.25``. Prints what happened: the
trials by state, that the numbers are 0..N-1 with none twice, none left running, the most
trial jobs seen running at once, the wall time, and the registered model's lineage.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

STUDY = """
import time
import optuna
import luminary as lm

study_name, direction = "scale", "minimize"
pruner = optuna.pruners.MedianPruner(n_startup_trials=8, n_warmup_steps=1)


def objective(trial):
    x = trial.suggest_float("x", -3, 3)
    width = trial.suggest_categorical("width", [16, 32, 64])
    for epoch in range(3):
        time.sleep(0.2)  # an epoch of training
        trial.report((x - 1) ** 2 + 1.0 / (epoch + 1) + width / 1000, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned
    import tempfile, pathlib, onnx
    from onnx import TensorProto, helper
    w = helper.make_tensor("w", TensorProto.FLOAT, [1], [x])
    g = helper.make_graph(
        [helper.make_node("Mul", ["in", "w"], ["out"])], "m",
        [helper.make_tensor_value_info("in", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 1])], [w])
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "model.onnx"
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
        lm.log_artifact(path)
    return (x - 1) ** 2 + width / 1000


if __name__ == "__main__":
    study = optuna.create_study(study_name=study_name, direction=direction, pruner=pruner,
                                storage=lm.tune.storage())
    study.optimize(objective, n_trials=20)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=500)
    ap.add_argument("--parallel", type=int, default=32)
    ap.add_argument("--kill-after", type=int, default=150, help="finished trials before SIGKILL")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="luminary-tune-scale-"))
    env = {**os.environ, "LUMINARY_HOME": str(home), "LUMINARY_PROJECT": "scale"}
    env.pop("LUMINARY_URI", None)
    os.environ.update({"LUMINARY_HOME": str(home), "LUMINARY_PROJECT": "scale"})
    import luminary as lm
    from luminary.compute import JobState, Pool

    store = lm.get_store()
    store.put_pool(Pool("local", gpus=8, cpus=32.0, memory_mb=16000))
    store.ensure_project("scale")
    script = home / "study.py"
    script.write_text(textwrap.dedent(STUDY))
    cli = [sys.executable, "-m", "luminary.cli"]
    t0 = time.monotonic()
    driver = subprocess.Popen(
        [
            *cli,
            "tune",
            "run",
            str(script),
            "--trials",
            str(args.trials),
            "--parallel",
            str(args.parallel),
            "--gpus",
            "0.25",
            "--no-progress",
        ],
        env=env,
        start_new_session=True,
    )
    most = 0

    def watch() -> tuple[int, int]:
        nonlocal most
        running = len(store.list_jobs("scale", [JobState.RUNNING, JobState.STARTING]))
        most = max(most, running)
        try:
            summary = store.list_studies("scale")[0]
        except IndexError:
            return 0, running
        done = sum(summary.counts.get(s, 0) for s in ("complete", "pruned", "fail"))
        return done, running

    killed_at = None
    while driver.poll() is None:
        done, running = watch()
        if killed_at is None and done >= args.kill_after:
            os.killpg(driver.pid, signal.SIGKILL)  # the driver dies; its jobs go on
            driver.wait()
            killed_at = (time.monotonic() - t0, done, running)
            break
        time.sleep(0.5)
    print(
        f"driver killed after {killed_at[0]:.0f} s with {killed_at[1]} trials finished and "
        f"{killed_at[2]} trial jobs running"
        if killed_at
        else "driver ended before the kill"
    )
    resume = subprocess.Popen(
        [*cli, "tune", "resume", "scale", "-p", "scale", "--no-progress"], env=env
    )
    while resume.poll() is None:
        watch()
        time.sleep(0.5)
    wall = time.monotonic() - t0
    study = lm.tune.load_study("scale", project="scale")
    trials = study.get_trials(deepcopy=False)
    states: dict[str, int] = {}
    for t in trials:
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    numbers = [t.number for t in trials]
    version = lm.tune.register_best(study, "scale-model", project="scale")
    info = lm.lineage(version.ref)
    report = {
        "trials": len(trials),
        "states": states,
        "numbers_dense_unique": numbers == list(range(len(numbers))),
        "left_running": states.get("running", 0),
        "most_trial_jobs_running_at_once": most,
        "driver_killed": killed_at is not None,
        "resume_rc": resume.returncode,
        "wall_s": round(wall, 1),
        "registered": version.ref,
        "lineage_trial": info.trial.to_dict() if info.trial else None,
        "home": str(home),
    }
    print(json.dumps(report, indent=2))
    ok = (
        len(trials) == args.trials
        and report["numbers_dense_unique"]
        and report["left_running"] == 0
        and resume.returncode == 0
        and info.trial is not None
    )
    print("PASS" if ok else "MISS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
