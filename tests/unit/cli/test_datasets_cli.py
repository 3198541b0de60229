"""``luminary datasets …`` against a real embedded home."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from luminary.cli import app
from luminary.demo._jets import make_jets
from luminary.demo._rootio import write_jets_root

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    write_jets_root(make_jets(200, seed=2), root / "jets.root")
    (root / "README").write_text("demo jets")
    past = time.time() - 60
    for p in root.iterdir():
        os.utime(p, (past, past))
    return root


def test_add_list_versions_get(folder: Path) -> None:
    code, output = invoke("datasets", "add", "jets", str(folder), "-m", "first", "-o", "json")
    assert code == 0, output
    data = json.loads(output[output.index("{") :])
    assert data["ref"] == "jets@1"
    assert data["file_count"] == 2
    assert data["schemas"] == 1
    code, output = invoke("datasets", "add", "jets", str(folder))
    assert code == 0, output
    assert "jets@2" in output
    assert "0 hashed" in output
    code, output = invoke("datasets", "list", "-o", "json")
    assert json.loads(output)[0]["latest_version"] == 2
    code, output = invoke("datasets", "versions", "jets")
    assert "first" in output
    code, output = invoke("datasets", "get", "jets@1")
    assert code == 0, output
    assert "jets.root" in output
    assert "200" in output


def test_diff_verify_checkout(folder: Path, tmp_path: Path) -> None:
    invoke("datasets", "add", "jets", str(folder), "--reference")
    (folder / "README").write_text("demo jets, changed")
    code, output = invoke("datasets", "verify", "jets@1")
    assert code == 1
    assert "README" in output
    assert "size" in output
    invoke("datasets", "add", "jets", str(folder), "--reference")
    code, output = invoke("datasets", "diff", "jets@1", "jets@2", "-o", "json")
    assert json.loads(output)["summary"] == {"added": 0, "removed": 0, "modified": 1}
    code, output = invoke("datasets", "verify", "jets@2")
    assert code == 0, output
    code, output = invoke("datasets", "checkout", "jets@2", str(tmp_path / "co"))
    assert code == 0, output
    assert (tmp_path / "co" / "README").read_text() == "demo jets, changed"


def test_unknown_dataset_is_a_clear_error(folder: Path) -> None:
    invoke("datasets", "add", "jets", str(folder))
    result = runner.invoke(app, ["datasets", "get", "jest@1"])
    assert result.exit_code != 0
    assert "did you mean 'jets'" in str(result.exception)
