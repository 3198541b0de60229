"""The ``luminary`` command against a real embedded home."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import luminary as lm
from luminary.cli import app

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture
def two_runs() -> tuple[str, str]:
    with lm.start_run("cms-btag", name="small", params={"lr": 0.01, "hidden": 16}) as a:
        for step, v in enumerate([0.8, 0.85, 0.9]):
            a.log({"val_auc": v}, step=step)
    with lm.start_run("cms-btag", name="wide", params={"lr": 0.001, "hidden": 64}) as b:
        b.log({"val_auc": 0.95, "loss": float("nan")}, step=0)
    return a.id, b.id


def test_runs_list_json_is_filtered_and_ordered(two_runs: tuple[str, str]) -> None:
    code, output = invoke(
        "runs",
        "list",
        "-p",
        "cms-btag",
        "-f",
        "metrics.val_auc > 0.5",
        "--order-by",
        "metrics.val_auc desc",
        "-o",
        "json",
    )
    assert code == 0
    rows = json.loads(output)
    assert [r["name"] for r in rows] == ["wide", "small"]
    assert rows[0]["metrics"]["loss"] == "NaN"


def test_runs_list_table_shows_names_and_values(two_runs: tuple[str, str]) -> None:
    code, output = invoke("runs", "list", "-p", "cms-btag", "-c", "params.lr,metrics.val_auc")
    assert code == 0
    assert "small" in output
    assert "wide" in output
    assert "0.95" in output


def test_runs_get_and_metrics(two_runs: tuple[str, str]) -> None:
    small, _ = two_runs
    code, output = invoke("runs", "get", small[:10], "-o", "json")
    assert code == 0
    data = json.loads(output)
    assert data["params"] == {"lr": 0.01, "hidden": 16}
    assert data["environment"]["python"]["version"]
    code, output = invoke("runs", "metrics", small, "val_auc", "-o", "json")
    assert code == 0, output
    assert [p["value"] for p in json.loads(output)["points"]] == [0.8, 0.85, 0.9]
    code, output = invoke("runs", "metrics", small, "val_auc")
    assert code == 0, output
    assert "3 points" in output


def test_runs_compare_shows_only_differences(two_runs: tuple[str, str]) -> None:
    code, output = invoke("runs", "compare", *two_runs)
    assert code == 0
    assert "params.hidden" in output
    assert "params.lr" in output


def test_runs_delete(two_runs: tuple[str, str]) -> None:
    small, wide = two_runs
    code, _ = invoke("runs", "delete", small, "--yes")
    assert code == 0
    assert [r.id for r in lm.search_runs("cms-btag")] == [wide]


def test_projects_create_and_list() -> None:
    assert invoke("projects", "create", "lhcb-gnn", "-d", "full event interpretation")[0] == 0
    code, output = invoke("projects", "list", "-o", "json")
    assert code == 0, output
    assert json.loads(output)[0]["name"] == "lhcb-gnn"


def test_artifacts_list_and_get(tmp_path: Path) -> None:
    src = tmp_path / "model.onnx"
    src.write_bytes(b"\x08\x01onnx-bytes")
    with lm.start_run("p") as run:
        run.log_artifact(src)
    code, output = invoke("artifacts", "list", run.id, "-o", "json")
    assert code == 0, output
    assert json.loads(output)[0]["path"] == "model.onnx"
    dest = tmp_path / "out"
    assert invoke("artifacts", "get", run.id, "model.onnx", "--dest", str(dest))[0] == 0
    assert (dest / "model.onnx").read_bytes() == src.read_bytes()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "luminary.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_errors_go_to_stderr_with_the_fix_and_nonzero_exit(two_runs: tuple[str, str]) -> None:
    done = _cli("runs", "metrics", two_runs[0], "val_aux")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "did you mean 'val_auc'" in done.stderr
    done = _cli("runs", "list", "-f", "metrics.val_auc >")
    assert done.returncode == 1
    assert "position 17" in done.stderr
    done = _cli("runs", "list", "--output", "yaml")
    assert done.returncode == 2
    assert "yaml" in done.stderr
