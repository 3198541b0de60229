"""``luminary models``, ``events`` and ``lineage`` against a real embedded home."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import luminary as lm
from luminary.cli import app
from luminary.registry._api import register_model
from tests.unit.registry.test_registry_api import make_onnx

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    return make_onnx(tmp_path / "tagger.onnx")


def test_register_alias_and_history(model_file: Path) -> None:
    with lm.start_run("cms-btag") as run:
        run.log({"val_auc": 0.9})
    code, output = invoke(
        "models", "register", "jet-tagger", str(model_file), "--run", run.id, "-o", "json"
    )
    assert code == 0
    assert json.loads(output)["ref"] == "jet-tagger@1"
    assert invoke("models", "register", "jet-tagger", str(model_file), "-p", "cms-btag")[0] == 0
    code, output = invoke("models", "alias", "set", "jet-tagger", "production", "2")
    assert code == 0, output
    assert "nothing → 2" in output
    invoke("models", "alias", "set", "jet-tagger", "production", "1")
    code, output = invoke("models", "alias", "history", "jet-tagger", "-o", "json")
    assert code == 0, output
    assert [(m["from_version"], m["to_version"]) for m in json.loads(output)] == [(None, 2), (2, 1)]
    code, output = invoke("models", "list", "-o", "json")
    assert code == 0, output
    assert json.loads(output)[0]["aliases"] == {"production": 1}
    code, output = invoke("models", "get", "jet-tagger@production")
    assert code == 0, output
    assert "constituents" in output
    assert "val_auc" in output
    code, output = invoke("models", "versions", "jet-tagger")
    assert code == 0, output
    assert "production" in output


def test_download_verifies_and_writes(model_file: Path, tmp_path: Path) -> None:
    register_model("m", model_file, project="p")
    dest = tmp_path / "out"
    dest.mkdir()
    assert invoke("models", "download", "m@1", "--dest", str(dest))[0] == 0
    assert (dest / "tagger.onnx").read_bytes() == model_file.read_bytes()


def test_delete_refuses_a_version_in_production(model_file: Path) -> None:
    register_model("m", model_file, project="p", alias="production")
    result = runner.invoke(app, ["models", "delete", "m@1", "--yes"])
    assert result.exit_code != 0
    assert "production" in str(result.exception)


def test_events_list_and_tail(model_file: Path) -> None:
    register_model("m", model_file, project="p", alias="production")
    code, output = invoke("events", "list", "-o", "json")
    assert code == 0, output
    assert [e["kind"] for e in json.loads(output)] == ["model.registered", "alias.set"]
    code, output = invoke("events", "tail", "--from-start", "--count", "2", "--interval", "0.05")
    assert code == 0, output
    lines = [json.loads(line) for line in output.strip().splitlines()]
    assert [e["subject"] for e in lines] == ["m@1", "m@production"]


def test_lineage_prints_the_chain(model_file: Path) -> None:
    with lm.start_run("p", params={"hidden": 32}) as run:
        run.log({"val_auc": 0.95})
        register_model("tagger", model_file, alias="production")
    code, output = invoke("lineage", "tagger@production")
    assert code == 0
    assert run.id in output
    assert "hidden=32" in output
    assert "val_auc=0.95" in output
    assert "production" in output
    code, output = invoke("lineage", "tagger@production", "-o", "json")
    assert code == 0, output
    assert json.loads(output)["run"]["id"] == run.id
