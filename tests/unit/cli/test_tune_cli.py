"""``luminary tune`` against a real embedded home: studies made by ``tune run`` (a script
imported from its path) and by the SDK, inspected with ``list``, ``show`` and ``best``; bad input
is one line naming the value and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import luminary as lm
from luminary.cli import app

pytest.importorskip("optuna", reason="the tune extra (luminary[tune]) is not installed")

runner = CliRunner()

SCRIPT = """
import optuna

study_name = "quad"
direction = "minimize"
sampler = optuna.samplers.RandomSampler(seed=1)

def objective(trial):
    x = trial.suggest_float("x", -3.0, 3.0)
    kind = trial.suggest_categorical("kind", ["a", "b"])
    return (x - 1.0) ** 2 + (0.5 if kind == "a" else 0.0)
"""


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "search.py"
    path.write_text(SCRIPT)
    return path


def _noisy(trial: object, seed: int) -> float:
    x = trial.suggest_float("x", 0.0, 1.0)  # type: ignore[attr-defined]
    return x + 0.01 * seed


def _two(trial: object) -> tuple[float, float]:
    x = trial.suggest_float("x", 0.0, 1.0)  # type: ignore[attr-defined]
    return x, (1.0 - x) ** 2


def test_run_imports_the_script_and_show_lists_its_trials(script: Path) -> None:
    code, output = invoke("tune", "run", str(script), "--trials", "6", "-p", "cms", "--no-progress")
    assert code == 0, output
    assert "study quad: 6 trials" in output
    code, output = invoke("tune", "show", "quad", "-p", "cms", "-o", "json")
    assert code == 0, output
    shown = json.loads(output)
    assert shown["directions"] == ["minimize"]
    assert shown["counts"] == {"complete": 6}
    assert [t["number"] for t in shown["trials"]] == list(range(6))
    values = [t["values"][0] for t in shown["trials"]]
    assert shown["best"]["values"][0] == min(values)
    assert set(shown["trials"][0]["params"]) == {"x", "kind"}
    # every trial is a run, child of the study's run
    run = lm.get_store().get_run(shown["trials"][0]["run_id"])
    assert run.parent_id == shown["run_id"]
    code, output = invoke("tune", "show", "quad", "-p", "cms", "--limit", "2")
    assert code == 0, output
    assert "the last 2 of 6" in output
    assert shown["trials"][5]["run_id"] in output
    # more trials go to the same study; --study and --direction override the script
    code, output = invoke("tune", "run", str(script), "--trials", "2", "-p", "cms", "--no-progress")
    assert code == 0, output
    assert "study quad: 8 trials" in output
    code, output = invoke(
        "tune", "run", str(script), "--trials", "2", "-p", "cms", "--study", "up",
        "--direction", "maximize", "--inline", "--no-progress", "-o", "json",
    )  # fmt: skip
    assert code == 0, output
    assert json.loads(output)["name"] == "up"
    assert lm.get_store().get_study("cms", "up").directions == ("maximize",)


def test_list_shows_every_study_with_counts_and_best(script: Path) -> None:
    assert invoke("tune", "run", str(script), "--trials", "3", "-p", "a", "--no-progress")[0] == 0
    lm.tune.optimize(
        _two, 3, study="pair", project="b", directions=["minimize"] * 2, progress=False
    )
    code, output = invoke("tune", "list", "-o", "json")
    assert code == 0, output
    found = {(s["project"], s["name"]): s for s in json.loads(output)}
    assert set(found) == {("a", "quad"), ("b", "pair")}
    assert found[("a", "quad")]["counts"] == {"complete": 3}
    assert found[("a", "quad")]["best_value"] is not None
    assert found[("b", "pair")]["best_value"] is None  # two objectives: no single best
    code, output = invoke("tune", "list", "-p", "b")
    assert code == 0, output
    assert "pair" in output
    assert "quad" not in output
    code, output = invoke("tune", "list", "-p", "nobody")
    assert code == 0
    assert "no studies" in output


def test_show_marks_the_pareto_front_of_two_objectives() -> None:
    lm.tune.optimize(
        _two, 5, study="pair", project="b", directions=["minimize"] * 2, progress=False
    )
    code, output = invoke("tune", "show", "pair", "-p", "b", "-o", "json")
    assert code == 0, output
    shown = json.loads(output)
    # x against (1 - x)^2 on [0, 1]: no trial dominates another, all are on the front
    assert shown["pareto_front"] == [0, 1, 2, 3, 4]
    assert all(t["pareto"] for t in shown["trials"])
    assert shown["best"] is None
    code, output = invoke("tune", "show", "pair", "-p", "b")
    assert code == 0, output
    assert "Pareto front: 5 trial(s)" in output
    assert "*0" in output


def test_best_follows_the_rule_and_shows_the_seeds_error() -> None:
    lm.tune.optimize(_noisy, 4, study="noisy", project="p", direction="maximize", seeds=3,
                     progress=False)  # fmt: skip
    code, output = invoke("tune", "best", "noisy", "-p", "p", "--rule", "mean", "-o", "json")
    assert code == 0, output
    best = json.loads(output)
    trials = lm.get_store().read_trials(lm.get_store().get_study("p", "noisy").id)
    assert best["number"] == max(trials, key=lambda t: t.values[0]).number  # type: ignore[index]
    assert best["stderr"] == pytest.approx(0.01 / 3**0.5)
    assert best["rule"] == "mean"
    code, output = invoke("tune", "best", "noisy", "-p", "p", "--z", "2")
    assert code == 0, output
    assert f"#{best['number']}" in output
    assert " ± " in output


def test_resume_of_a_study_that_ran_in_process_says_how_to_go_on(script: Path) -> None:
    assert invoke("tune", "run", str(script), "--trials", "2", "-p", "p", "--no-progress")[0] == 0
    result = runner.invoke(app, ["tune", "resume", "quad", "-p", "p", "--trials", "3"])
    assert result.exit_code != 0
    assert "did not run as jobs" in str(result.exception)
    assert "study='quad'" in str(result.exception)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("tune", "best", "quad", "--rule", "best"), "'lcb', 'mean', 'value'"),
        (("tune", "run", "{script}", "--trials", "0"), "--trials"),
        (("tune", "run", "{script}", "--trials", "-5"), "--trials"),
        (("tune", "run", "{script}", "--trials", "many"), "--trials"),
        (("tune", "run", "{script}"), "--trials"),
        (("tune", "resume", "quad", "--trials", "0"), "--trials"),
        (("tune", "run", "{script}", "--trials", "2", "--direction", "up"), "--direction"),
    ],
)
def test_bad_options_are_usage_errors(script: Path, args: tuple[str, ...], expected: str) -> None:
    result = runner.invoke(app, [a.replace("{script}", str(script)) for a in args])
    assert result.exit_code == 2
    text = " ".join("".join(c for c in result.output if c not in "│╭╮╰╯─").split())
    assert expected in text


def test_an_unknown_study_names_the_nearest(script: Path) -> None:
    assert invoke("tune", "run", str(script), "--trials", "1", "-p", "p", "--no-progress")[0] == 0
    for verb in ("show", "best", "resume"):
        result = runner.invoke(app, ["tune", verb, "qaud", "-p", "p"])
        assert result.exit_code != 0
        assert "did you mean 'quad'?" in str(result.exception)


def test_a_script_without_objective_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    result = runner.invoke(app, ["tune", "run", str(empty), "--trials", "2"])
    assert result.exit_code != 0
    assert "defines no objective" in str(result.exception)
    broken = tmp_path / "broken.py"
    broken.write_text("def objective(trial):\n    return 1\nraise RuntimeError('no data here')\n")
    result = runner.invoke(app, ["tune", "run", str(broken), "--trials", "2"])
    assert "failed while loading: RuntimeError: no data here" in str(result.exception)
    assert lm.get_store().list_studies() == []


def test_the_command_says_the_nearest_study_in_one_line(script: Path) -> None:
    import subprocess
    import sys

    assert invoke("tune", "run", str(script), "--trials", "1", "-p", "p", "--no-progress")[0] == 0
    done = subprocess.run(
        [sys.executable, "-m", "luminary.cli", "tune", "show", "qaud", "-p", "p"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: no study 'qaud' in project 'p'; did you mean 'quad'?"
    ]
