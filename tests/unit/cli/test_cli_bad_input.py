"""Bad input on the command line: one line on stderr that names the limit, a non-zero exit,
and never a traceback (the real ``luminary`` entry point, in a subprocess)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import luminary as lm

_BIG = "9" * 30
_MANY_KEYS = " and ".join(f"params.k{i} = 1" for i in range(40))
_MANY_TERMS = " or ".join(f"params.k = {i}" for i in range(300))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "luminary.cli", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def run_id() -> str:
    with lm.start_run("cms-btag", params={"k": 1}) as run:
        run.log({"loss": 0.5}, step=0)
    return run.id


@pytest.mark.parametrize(
    ("args", "limit"),
    [
        (("runs", "list", "--limit", _BIG), "9223372036854775807"),
        (("runs", "list", "-f", _MANY_KEYS), "at most 32"),
        (("runs", "list", "-f", _MANY_TERMS), "more than 200 comparisons"),
        (("runs", "list", "-f", "(" * 30 + "params.k = 1" + ")" * 30), "more than 24 levels"),
        (("runs", "list", "--order-by", "metrics.x desc, " * 20 + "name"), "at most 16"),
        (("models", "get", f"m@{_BIG}"), "2147483647"),
        (("events", "list", "--after", _BIG), "9223372036854775807"),
        (("events", "list", "--limit", _BIG), "9223372036854775807"),
        (("datasets", "add", "jets", "/no/such/folder"), "does not exist"),
        (("models", "register", "m", "/no/such/model.onnx"), "does not exist"),
    ],
)
def test_bad_input_is_one_line_with_the_limit_and_no_traceback(
    run_id: str, args: tuple[str, ...], limit: str
) -> None:
    done = _cli(*args)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    assert limit in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert limit in errors[0] or "Usage:" in done.stderr


def test_an_unreadable_file_is_one_line(tmp_path: Path, run_id: str) -> None:
    folder = tmp_path / "model.onnx"
    folder.mkdir()
    done = _cli("models", "register", "m", str(folder))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert str(folder) in done.stderr
