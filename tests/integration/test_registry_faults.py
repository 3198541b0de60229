"""Interrupting ``datasets add`` and racing alias moves, with real processes."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import luminary as lm
from luminary.datasets import _api as ds
from luminary.errors import NotFoundError

CHILD_ADD = textwrap.dedent(
    """
    import sys
    from luminary.datasets import _api as ds

    def progress(done_bytes, done_files):
        if done_files >= 20:
            print("hashing", flush=True)

    ds.add("big", [sys.argv[1]], on_progress=progress, workers=1)
    print("done", flush=True)
    """
)


def _env(home: Path) -> dict[str, str]:
    return dict(os.environ, LUMINARY_HOME=str(home), PYTHONUNBUFFERED="1")


def _make_tree(root: Path, files: int = 400, size: int = 256 * 1024) -> Path:
    root.mkdir()
    for i in range(files):
        (root / f"f{i:04d}.bin").write_bytes(os.urandom(size))
    return root


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_add_leaves_no_version_and_a_retry_completes(
    tmp_path: Path, home: Path, sig: signal.Signals
) -> None:
    data = _make_tree(tmp_path / "data")
    with subprocess.Popen(
        [sys.executable, "-c", CHILD_ADD, str(data)],
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "hashing", child.stderr.read() if child.stderr else ""
        child.send_signal(sig)
        child.communicate(timeout=30)
    assert child.returncode != 0
    with pytest.raises(NotFoundError):
        lm.get_store().get_dataset_version("big")
    stats = ds.add("big", [data])
    assert stats.version.ref == "big@1"
    assert stats.version.file_count == 400
    assert list(ds.verify("big@1")) == []


CHILD_ALIAS = textwrap.dedent(
    """
    import sys, time
    from luminary.registry import _api as reg
    version, start = int(sys.argv[1]), float(sys.argv[2])
    while time.time() < start:
        time.sleep(0.001)
    for _ in range(10):
        reg.set_alias("tagger", "production", version)
    """
)


def test_two_processes_moving_one_alias(tmp_path: Path, home: Path) -> None:
    from luminary.registry import _api as reg
    from tests.unit.registry.test_registry_api import make_onnx

    reg.register_model("tagger", make_onnx(tmp_path / "a.onnx", 2), project="p")
    reg.register_model("tagger", make_onnx(tmp_path / "b.onnx", 3), project="p")
    start = time.time() + 1.5
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD_ALIAS, str(v), str(start)],
            env=_env(home),
            stderr=subprocess.PIPE,
            text=True,
        )
        for v in (1, 2)
    ]
    for child in children:
        _, stderr = child.communicate(timeout=60)
        assert child.returncode == 0, stderr
        assert "locked" not in stderr
    moves = reg.alias_history("tagger", "production")
    assert len(moves) == 20
    assert moves[0].from_version is None
    for before, after in itertools.pairwise(moves):
        assert after.from_version == before.to_version  # every move saw the one before it
    assert lm.get_store().get_model_version("tagger@production").version == moves[-1].to_version
