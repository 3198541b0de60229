"""The tracking SDK against a real SQLite store in the test's own LUMINARY_HOME.

Every test reads back through the store (often a second, independent one) rather than trusting
the SDK's own state, so a point that was accepted but never written makes a test fail.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest

import luminary as lm
from luminary.errors import (
    BackendUnavailableError,
    InvalidArgumentError,
    InvalidStateError,
    NotFoundError,
)
from luminary.store import MetricPoint, RunStatus, SqlStore, Store, set_store
from luminary.tracking import ActiveRun
from luminary.tracking import _api as api
from tests._records import own


def _store_at(home: Path) -> SqlStore:
    """A second store on the same files: what it reads was committed, not just buffered."""
    return SqlStore(f"sqlite:///{home / 'luminary.db'}", str(home / "blobs"))


@pytest.fixture
def reader(home: Path) -> Iterator[SqlStore]:
    lm.get_store()  # create the database the way the SDK does
    store = _store_at(home)
    yield store
    store.close()


def _blob_files(home: Path) -> list[Path]:
    root = home / "blobs"
    return [
        p
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".") and "tmp" not in p.relative_to(root).parts
    ]


# -- metrics --------------------------------------------------------------------------------
def test_flush_makes_every_point_durable(reader: SqlStore) -> None:
    run = lm.start_run(project="p", capture_env=False)
    for i in range(1000):
        run.log({"loss": 1.0 / (i + 1), "acc": i * 0.001})
    run.flush()
    assert run.points_written == 2000
    loss = reader.get_metric_history(run.id, "loss")
    acc = reader.get_metric_history(run.id, "acc")
    assert loss.steps == list(range(1000))
    assert loss.values == [1.0 / (i + 1) for i in range(1000)]
    assert acc.values == [i * 0.001 for i in range(1000)]
    assert reader.get_run(run.id).metrics == {"acc": 0.999, "loss": 1.0 / 1000}
    run.end()


def test_flush_with_nothing_logged_is_a_no_op(reader: SqlStore) -> None:
    run = lm.start_run(project="p", capture_env=False)
    run.flush()
    run.flush()
    assert run.points_written == 0
    assert reader.metric_series(run.id) == {}
    run.end()


def test_auto_step_counts_per_key(reader: SqlStore) -> None:
    run = lm.start_run(project="p", capture_env=False)
    run.log({"a": 1.0})
    run.log({"a": 2.0, "b": 10.0})
    run.log({"a": 3.0})
    run.log({"b": 20.0})
    run.flush()
    assert reader.get_metric_history(run.id, "a").steps == [0, 1, 2]
    assert reader.get_metric_history(run.id, "a").values == [1.0, 2.0, 3.0]
    assert reader.get_metric_history(run.id, "b").steps == [0, 1]
    assert reader.get_metric_history(run.id, "b").values == [10.0, 20.0]
    run.end()


def test_explicit_steps_are_kept_and_auto_step_continues_after_them(reader: SqlStore) -> None:
    run = lm.start_run(project="p", capture_env=False)
    run.log({"val": 0.5}, step=10)
    run.log({"val": 0.6}, step=20)
    run.log({"val": 0.7})  # one past the last step of this key
    run.log_metric("val", 0.1, step=5)
    run.flush()
    hist = reader.get_metric_history(run.id, "val")
    assert hist.steps == [5, 10, 20, 21]
    assert hist.values == [0.1, 0.5, 0.6, 0.7]
    assert reader.get_run(run.id).metrics["val"] == 0.7  # the latest by step, not by time
    run.end()


def test_nan_and_infinities_are_kept(reader: SqlStore) -> None:
    run = lm.start_run(project="p", capture_env=False)
    run.log({"x": math.nan})
    run.log({"x": math.inf})
    run.log({"x": -math.inf})
    run.log({"x": float(np.float32("nan"))})
    run.flush()
    values = reader.get_metric_history(run.id, "x").values
    assert math.isnan(values[0])
    assert values[1:3] == [math.inf, -math.inf]
    assert math.isnan(values[3])
    assert math.isnan(reader.get_run(run.id).metrics["x"])
    run.end()


def test_numpy_scalars_are_accepted_as_values_and_steps(reader: SqlStore) -> None:
    run = lm.start_run(project="p", capture_env=False)
    run.log(
        {"f64": np.float64(0.25), "f32": np.float32(0.5), "i64": np.int64(7), "b": np.bool_(1)},
        step=np.int64(3),
    )
    run.log({"f64": np.float64("nan")}, step=np.int32(4))
    run.flush()
    assert reader.get_metric_history(run.id, "f64").steps == [3, 4]
    metrics = reader.get_run(run.id).metrics
    assert math.isnan(metrics["f64"])
    assert metrics["f32"] == 0.5
    assert metrics["i64"] == 7.0
    assert metrics["b"] == 1.0
    hist = reader.get_metric_history(run.id, "i64")
    assert type(hist.values[0]) is float
    assert type(hist.steps[0]) is int
    run.end()


@pytest.mark.parametrize("value", ["high", b"1", 1 + 2j, None, [1.0], object()])
def test_non_numeric_value_is_rejected(value: object) -> None:
    run = lm.start_run(project="p", capture_env=False)
    with pytest.raises(InvalidArgumentError, match="real number"):
        run.log({"loss": value})
    run.end()


def test_huge_integer_value_is_an_invalid_argument() -> None:
    run = lm.start_run(project="p", capture_env=False)
    with pytest.raises(InvalidArgumentError, match="real number"):
        run.log({"loss": 10**400})
    run.end()


def test_rejected_log_call_writes_nothing(reader: SqlStore) -> None:
    """A dict with one bad value is refused as a whole: no partial write, no step consumed."""
    run = lm.start_run(project="p", capture_env=False)
    with pytest.raises(InvalidArgumentError, match="'bad'"):
        run.log({"good": 1.0, "bad": "high"})
    run.log({"good": 2.0})
    run.flush()
    hist = reader.get_metric_history(run.id, "good")
    assert hist.steps == [0]
    assert hist.values == [2.0]
    run.end()


@pytest.mark.parametrize("key", ["loss;1", "", " loss", "a" * 251, "naïve", 3])
def test_bad_metric_key_names_the_allowed_characters(key: object) -> None:
    run = lm.start_run(project="p", capture_env=False)
    with pytest.raises(InvalidArgumentError, match=r"metric key .* letters, digits, '_'"):
        run.log({key: 1.0})  # type: ignore[dict-item]
    run.end()


@pytest.mark.parametrize("step", [1.5, "3", True, 2.0])
def test_bad_step_is_rejected(step: object) -> None:
    run = lm.start_run(project="p", capture_env=False)
    with pytest.raises(InvalidArgumentError, match="step"):
        run.log({"loss": 1.0}, step=step)  # type: ignore[arg-type]
    run.end()


def test_logging_after_end_is_an_invalid_state(tmp_path: Path) -> None:
    run = lm.start_run(project="p", capture_env=False)
    run.end()
    artifact = tmp_path / "f.txt"
    artifact.write_text("x")
    with pytest.raises(InvalidStateError, match="has ended"):
        run.log({"loss": 1.0})
    with pytest.raises(InvalidStateError, match="has ended"):
        run.log_params({"lr": 0.1})
    with pytest.raises(InvalidStateError, match="has ended"):
        run.set_tags({"t": "v"})
    with pytest.raises(InvalidStateError, match="has ended"):
        run.log_artifact(artifact)
    run.end()  # idempotent


def test_log_from_many_threads_loses_nothing(reader: SqlStore) -> None:
    run = lm.start_run(project="p", capture_env=False)

    def work(t: int) -> None:
        for i in range(2000):
            run.log({f"t{t}": float(i)}, step=i)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    run.end()
    for t in range(4):
        hist = reader.get_metric_history(run.id, f"t{t}")
        assert hist.steps == list(range(2000))
        assert hist.values == [float(i) for i in range(2000)]


def test_end_writes_what_is_still_buffered(reader: SqlStore) -> None:
    run = lm.start_run(project="p", capture_env=False)
    for i in range(500):
        run.log({"loss": float(i)})
    run.end()
    assert len(reader.get_metric_history(run.id, "loss")) == 500
    assert reader.get_run(run.id).status is RunStatus.FINISHED


def test_two_writers_of_one_run_share_a_series(reader: SqlStore) -> None:
    """A resumed run whose key was declared concurrently under another id is re-addressed."""
    first = lm.start_run(project="p", capture_env=False)
    first.log({"loss": 1.0}, step=0)
    second = lm.start_run(resume=first.id, capture_env=False)
    second.log({"loss": 2.0}, step=1)
    first.flush()
    second.flush()  # its "loss" series already exists under first's id
    second.log({"loss": 3.0}, step=2)
    second.flush()
    hist = reader.get_metric_history(first.id, "loss")
    assert hist.steps == [0, 1, 2]
    assert hist.values == [1.0, 2.0, 3.0]
    assert len(reader.metric_series(first.id)) == 1
    second.end()
    first.end()


# -- params and tags ------------------------------------------------------------------------
def test_param_is_set_once(reader: SqlStore) -> None:
    run = lm.start_run(project="p", params={"lr": 0.001, "layers": 3}, capture_env=False)
    run.log_params({"lr": 0.001, "opt": "adam"})  # the same value again is fine
    with pytest.raises(InvalidArgumentError, match=r"param 'lr' .* already 0.001"):
        run.log_params({"lr": 0.01})
    with pytest.raises(InvalidArgumentError, match="'layers'"):
        run.log_param("layers", 4)
    run.end()
    assert reader.get_run(run.id).params == {"lr": 0.001, "layers": 3, "opt": "adam"}


def test_tags_are_stored_as_text_and_overwritten(reader: SqlStore) -> None:
    run = lm.start_run(project="p", tags={"stage": "dev", "seed": 1}, capture_env=False)
    run.set_tags({"stage": "prod"})
    run.set_tag("gpu", True)
    run.end()
    assert own(reader.get_run(run.id).tags) == {"stage": "prod", "seed": "1", "gpu": "True"}


# -- lifecycle ------------------------------------------------------------------------------
def test_context_manager_finishes_on_normal_exit(reader: SqlStore) -> None:
    with lm.start_run(project="p", capture_env=False) as run:
        assert lm.active_run() is run
        run.log({"x": 1.0})
    got = reader.get_run(run.id)
    assert got.status is RunStatus.FINISHED
    assert got.end_time is not None
    assert own(got.metrics) == {"x": 1.0}
    assert lm.active_run() is None


def test_context_manager_fails_on_exception(reader: SqlStore) -> None:
    with (  # noqa: PT012 - the block is the test
        pytest.raises(RuntimeError, match="diverged"),
        lm.start_run(project="p", capture_env=False) as run,
    ):
        run.log({"x": 1.0})
        raise RuntimeError("diverged")
    got = reader.get_run(run.id)
    assert got.status is RunStatus.FAILED
    assert own(got.metrics) == {"x": 1.0}
    assert lm.active_run() is None


def test_context_manager_is_killed_on_keyboard_interrupt(reader: SqlStore) -> None:
    with (  # noqa: PT012 - the block is the test
        pytest.raises(KeyboardInterrupt),
        lm.start_run(project="p", capture_env=False) as run,
    ):
        run.log({"x": 1.0})
        raise KeyboardInterrupt
    assert reader.get_run(run.id).status is RunStatus.KILLED


def test_explicit_end_status(reader: SqlStore) -> None:
    run = lm.start_run(project="p", capture_env=False)
    run.end("failed")
    run.end("finished")  # ignored: end is idempotent
    assert reader.get_run(run.id).status is RunStatus.FAILED


def test_nested_runs_get_the_parent_id(reader: SqlStore) -> None:
    with lm.start_run(project="p", capture_env=False) as parent:
        with lm.start_run(project="p", nested=True, capture_env=False) as child:
            assert lm.active_run() is child
            assert child.info.parent_id == parent.id
        assert lm.active_run() is parent
        explicit = lm.start_run(project="p", parent=parent.id, capture_env=False)
        explicit.end()
        by_object = lm.start_run(project="p", parent=parent, capture_env=False)
        by_object.end()
    assert reader.get_run(child.id).parent_id == parent.id
    assert reader.get_run(explicit.id).parent_id == parent.id
    assert reader.get_run(by_object.id).parent_id == parent.id
    assert reader.get_run(parent.id).parent_id is None


def test_nested_without_an_active_run_is_an_invalid_state() -> None:
    with pytest.raises(InvalidStateError, match="active run"):
        lm.start_run(project="p", nested=True, capture_env=False)


def test_module_level_log_goes_to_the_active_run(reader: SqlStore) -> None:
    with lm.start_run(project="p", capture_env=False) as run:
        lm.log({"x": 1.0})
        lm.log({"x": 2.0}, step=7)
        lm.log_params({"lr": 0.1})
        lm.set_tags({"k": "v"})
    got = reader.get_run(run.id)
    assert reader.get_metric_history(run.id, "x").steps == [0, 7]
    assert got.params == {"lr": 0.1}
    assert own(got.tags) == {"k": "v"}


def test_module_level_log_without_an_active_run_is_an_invalid_state() -> None:
    with pytest.raises(InvalidStateError, match="no active run"):
        lm.log({"x": 1.0})
    with lm.start_run(project="p", capture_env=False):
        pass
    with pytest.raises(InvalidStateError, match="no active run"):
        lm.log({"x": 1.0})


def test_default_project_comes_from_the_environment(
    reader: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUMINARY_PROJECT", "from-env")
    with lm.start_run(capture_env=False) as run:
        pass
    assert reader.get_run(run.id).project == "from-env"


def test_resume_reopens_a_finished_run(reader: SqlStore) -> None:
    with lm.start_run(project="p", capture_env=False) as run:
        run.log({"x": 1.0}, step=0)
    with lm.start_run(resume=run.id, capture_env=False) as again:
        assert again.id == run.id
        assert reader.get_run(run.id).status is RunStatus.RUNNING
        again.log({"x": 2.0}, step=1)
    got = reader.get_run(run.id)
    assert got.status is RunStatus.FINISHED
    assert reader.get_metric_history(run.id, "x").values == [1.0, 2.0]


def test_resumed_run_continues_auto_steps(reader: SqlStore) -> None:
    """A preempted job that resumes and logs without steps must not restart at step 0."""
    with lm.start_run(project="p", capture_env=False) as run:
        for i in range(3):
            run.log({"loss": float(i)})
        run.log({"val": 0.5}, step=10)
    with lm.start_run(resume=run.id, capture_env=False) as again:
        again.log({"loss": 3.0, "val": 0.6, "new": 1.0})
    assert reader.get_metric_history(run.id, "loss").steps == [0, 1, 2, 3]
    assert reader.get_metric_history(run.id, "val").steps == [10, 11]
    assert reader.get_metric_history(run.id, "new").steps == [0]
    assert own(reader.get_run(run.id).metrics) == {"loss": 3.0, "new": 1.0, "val": 0.6}
    expected = {"loss": 3, "new": 0, "val": 11}
    assert own(reader.last_steps(run.id)) == expected
    assert own(Store.last_steps(reader, run.id)) == expected  # the generic version
    # Each segment of the run records its own energy, one step after the other.
    assert reader.get_metric_history(run.id, "energy/total_joules").steps == [0, 1]


# -- lookups --------------------------------------------------------------------------------
def test_unknown_run_is_not_found_and_a_key_error() -> None:
    with lm.start_run(project="p", capture_env=False):
        pass
    with pytest.raises(NotFoundError, match="no run 'zzzzzzzzzzzzzzzz'") as info:
        lm.get_run("zzzzzzzzzzzzzzzz")
    assert isinstance(info.value, KeyError)
    with pytest.raises(KeyError):
        lm.get_metric_history("zzzzzzzzzzzzzzzz", "loss")


def test_unknown_project_in_search_suggests_the_nearest() -> None:
    with lm.start_run(project="jet-tagger", capture_env=False):
        pass
    with pytest.raises(NotFoundError, match="did you mean 'jet-tagger'"):
        lm.search_runs("jet-taggr")
    assert [r.project for r in lm.search_runs("jet-tagger")] == ["jet-tagger"]


def test_unknown_metric_suggests_the_nearest() -> None:
    with lm.start_run(project="p", capture_env=False) as run:
        run.log({"val_loss": 1.0})
    with pytest.raises(NotFoundError, match="did you mean 'val_loss'"):
        lm.get_metric_history(run.id, "val_los")


# -- artifacts ------------------------------------------------------------------------------
def test_file_artifact_round_trips_byte_identical(tmp_path: Path) -> None:
    src = tmp_path / "weights.bin"
    src.write_bytes(os.urandom(300_000))
    with lm.start_run(project="p", capture_env=False) as run:
        entries = run.log_artifact(src)
    assert [e.path for e in entries] == ["weights.bin"]
    assert entries[0].size == 300_000
    dest = tmp_path / "out"
    got = lm.download_artifacts(run.id, "weights.bin", dest)
    assert got == [(dest / "weights.bin").resolve()]
    assert (dest / "weights.bin").read_bytes() == src.read_bytes()


def test_folder_artifact_round_trips_with_nested_paths(tmp_path: Path) -> None:
    src = tmp_path / "ckpt"
    files = {
        "config.json": b'{"lr": 0.001}',
        "empty.txt": b"",
        "sub/weights.npz": os.urandom(70_000),
        "sub/deeper/notes.md": "höhe ✓\n".encode(),
    }
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    with lm.start_run(project="p", capture_env=False) as run:
        run.log_artifact(src, name="model")
    listed = lm.list_artifacts(run.id)
    assert [e.path for e in listed] == sorted(f"model/{rel}" for rel in files)
    dest = tmp_path / "out"
    lm.download_artifacts(run.id, "model", dest)
    for rel, data in files.items():
        assert (dest / "model" / rel).read_bytes() == data
    only_sub = tmp_path / "only-sub"
    lm.download_artifacts(run.id, "model/sub/", only_sub)
    assert sorted(p.relative_to(only_sub).as_posix() for p in only_sub.rglob("*.*")) == [
        "model/sub/deeper/notes.md",
        "model/sub/weights.npz",
    ]


def test_folder_given_as_dot_is_named_after_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "plots"
    (src / "roc").mkdir(parents=True)
    (src / "roc" / "auc.txt").write_text("0.93")
    monkeypatch.chdir(src / "roc")
    with lm.start_run(project="p", capture_env=False) as run:
        run.log_artifact(".")
        run.log_artifact("../roc/..")
    assert [e.path for e in lm.list_artifacts(run.id)] == ["plots/roc/auc.txt", "roc/auc.txt"]


def test_same_content_is_stored_once(tmp_path: Path, home: Path) -> None:
    data = os.urandom(50_000)
    (tmp_path / "a.bin").write_bytes(data)
    (tmp_path / "b.bin").write_bytes(data)
    with lm.start_run(project="p", capture_env=False) as run:
        run.log_artifact(tmp_path / "a.bin")
        run.log_artifact(tmp_path / "b.bin")
        run.log_artifact(tmp_path / "a.bin", name="copy/a.bin")
    with lm.start_run(project="p", capture_env=False) as other:
        other.log_artifact(tmp_path / "a.bin")
    assert len(_blob_files(home)) == 1
    assert len({e.digest for e in lm.list_artifacts(run.id)}) == 1
    assert len(lm.list_artifacts(run.id)) == 3
    lm.download_artifacts(other.id, "a.bin", tmp_path / "out")
    assert (tmp_path / "out" / "a.bin").read_bytes() == data


def test_missing_artifact_path_is_an_invalid_argument(tmp_path: Path) -> None:
    with (
        lm.start_run(project="p", capture_env=False) as run,
        pytest.raises(InvalidArgumentError, match="does not exist"),
    ):
        run.log_artifact(tmp_path / "nope.bin")
    assert lm.list_artifacts(run.id) == []


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/abs", "a\\b", ""])
def test_artifact_name_that_escapes_is_rejected(tmp_path: Path, name: str) -> None:
    src = tmp_path / "f.txt"
    src.write_text("x")
    with (
        lm.start_run(project="p", capture_env=False) as run,
        pytest.raises(InvalidArgumentError, match="artifact path"),
    ):
        run.log_artifact(src, name=name)
    assert lm.list_artifacts(run.id) == []


def test_download_of_unknown_artifact_is_not_found(tmp_path: Path) -> None:
    src = tmp_path / "model.pt"
    src.write_text("x")
    with lm.start_run(project="p", capture_env=False) as run:
        run.log_artifact(src)
    with pytest.raises(NotFoundError, match=r"did you mean 'model\.pt'"):
        lm.download_artifacts(run.id, "model.pth", tmp_path / "out")


# -- environment ----------------------------------------------------------------------------
def test_environment_is_captured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["train.py", "--lr", "0.001"])
    with lm.start_run(project="p") as run:
        pass
    env = lm.get_store().get_environment(run.id)
    assert env["python"]["version"] == platform.python_version()
    assert env["python"]["executable"] == sys.executable
    assert "luminary" in env["packages"]
    assert env["packages"]["luminary"] == lm.__version__
    assert env["command"] == ["train.py", "--lr", "0.001"]
    assert env["cwd"] == str(tmp_path)
    assert env["git"] is None  # tmp_path is not in a git work tree
    assert env["cpu"]["logical"] >= 1
    assert isinstance(env["gpus"], list)


def test_no_environment_when_capture_is_off() -> None:
    with lm.start_run(project="p", capture_env=False) as run:
        pass
    assert lm.get_store().get_environment(run.id) == {}


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_environment_records_the_git_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(var, raising=False)

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    git("init", "-q", "-b", "main")
    (repo / "train.py").write_text("print('hi')\n")
    git("add", "train.py")
    git("commit", "-q", "-m", "first")
    git("remote", "add", "origin", "https://example.org/cms/btag.git")
    commit = git("rev-parse", "HEAD")
    (repo / "train.py").write_text("print('changed')\n")  # a tracked change: dirty
    (repo / "sub").mkdir()
    monkeypatch.chdir(repo / "sub")
    with lm.start_run(project="p") as run:
        pass
    state = lm.get_store().get_environment(run.id)["git"]
    assert state == {
        "commit": commit,
        "branch": "main",
        "dirty": True,
        "remote": "https://example.org/cms/btag.git",
        "root": str(repo.resolve()),
    }


# -- import cost ----------------------------------------------------------------------------
def test_import_luminary_is_cheap() -> None:
    code = (
        "import luminary, sys; "
        "print(sorted(m for m in ('sqlalchemy', 'numpy', 'typer', 'alembic', 'fsspec', "
        "'rich', 'psutil') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
    assert done.stderr == ""


# -- the writer under a failing store -------------------------------------------------------
class FlakyStore(SqlStore):
    """A real SqlStore whose first ``failures`` write_metrics calls fail like a lost database."""

    def __init__(self, home: Path, failures: int) -> None:
        super().__init__(f"sqlite:///{home / 'luminary.db'}", str(home / "blobs"))
        self.failures_left = failures
        self.calls = 0
        self.failed_calls = 0
        self.batch_ids: list[str | None] = []
        self.store_then_fail = False

    def write_metrics(
        self,
        run_id: str,
        new_series: Sequence[tuple[int, str]],
        points: Sequence[MetricPoint],
        batch_id: str | None = None,
    ) -> dict[str, int]:
        self.calls += 1
        self.batch_ids.append(batch_id)
        if self.failures_left > 0:
            self.failures_left -= 1
            self.failed_calls += 1
            if self.store_then_fail:  # stored, but the answer is lost
                super().write_metrics(run_id, new_series, points, batch_id)
            raise BackendUnavailableError("the database does not answer (injected by the test)")
        return super().write_metrics(run_id, new_series, points, batch_id)


def test_a_write_stored_but_not_acknowledged_is_not_stored_twice(
    flaky: FlakyStore, reader: SqlStore
) -> None:
    flaky.store_then_fail = True
    run = ActiveRun(flaky, flaky.create_run("p"), flush_every_s=3600, capture_env=False)
    for i in range(10):
        run.log({"loss": float(i)})
    with pytest.raises(BackendUnavailableError):
        run.flush()
    for i in range(10, 15):  # logged between the attempts: not part of the retried chunk
        run.log({"loss": float(i)})
    with pytest.raises(BackendUnavailableError):
        run.flush()
    assert reader.get_metric_history(run.id, "loss").steps == list(range(10))
    run.flush()  # the retried chunk is a no-op; the 5 later points go as a new batch
    assert flaky.batch_ids[0] is not None
    assert flaky.batch_ids[0] == flaky.batch_ids[1] == flaky.batch_ids[2]
    assert flaky.batch_ids[3] != flaky.batch_ids[0]
    assert reader.get_metric_history(run.id, "loss").steps == list(range(15))
    assert run.points_written == 15
    run.end()


class FailingStatusStore(SqlStore):
    def __init__(self, home: Path) -> None:
        super().__init__(f"sqlite:///{home / 'luminary.db'}", str(home / "blobs"))

    def set_run_status(self, run_id: str, status: RunStatus, end_ms: int | None = None) -> None:
        raise BackendUnavailableError("the database does not answer (injected by the test)")


@pytest.fixture
def flaky(home: Path) -> Iterator[FlakyStore]:
    store = FlakyStore(home, failures=2)
    yield store
    store.close()


def test_flush_raises_while_the_store_fails_and_loses_nothing(
    flaky: FlakyStore, reader: SqlStore
) -> None:
    # The background writer sleeps for an hour: only flush() writes, so the calls are exact.
    run = ActiveRun(flaky, flaky.create_run("p"), flush_every_s=3600, capture_env=False)
    for i in range(300):
        run.log({"loss": float(i), "acc": -float(i)})
    with pytest.raises(BackendUnavailableError, match="does not answer"):
        run.flush()
    with pytest.raises(BackendUnavailableError, match="does not answer"):
        run.flush()
    assert run.points_written == 0
    assert reader.metric_series(run.id) == {}  # nothing half-written
    run.log({"loss": 300.0})  # logging goes on during the outage
    run.flush()
    # the failed chunk again, as it was (same batch id), then the point logged since
    assert flaky.calls == 4
    assert flaky.batch_ids[0] == flaky.batch_ids[1] == flaky.batch_ids[2] != flaky.batch_ids[3]
    assert run.points_written == 601
    loss = reader.get_metric_history(run.id, "loss")
    assert loss.steps == list(range(301))
    assert loss.values == [float(i) for i in range(301)]
    assert reader.get_metric_history(run.id, "acc").values == [-float(i) for i in range(300)]
    run.flush()
    assert flaky.calls == 4  # nothing left to write
    run.end()
    assert len(reader.get_metric_history(run.id, "loss")) == 301  # written once, not twice


def test_background_writer_retries_by_itself(
    flaky: FlakyStore, reader: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="luminary.tracking")
    run = ActiveRun(flaky, flaky.create_run("p"), flush_every_s=0.02, capture_env=False)
    for i in range(1000):
        run.log({"loss": float(i)})
    deadline = time.monotonic() + 10
    while run.points_written < 1000 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert flaky.failed_calls == 2
    assert run.points_written == 1000
    assert reader.get_metric_history(run.id, "loss").values == [float(i) for i in range(1000)]
    assert "will retry" in caplog.text
    run.end()
    assert len(reader.get_metric_history(run.id, "loss")) == 1000


def test_writer_backs_off_while_the_store_is_down(home: Path, reader: SqlStore) -> None:
    """A full buffer wakes the writer on every log() call; during an outage it must still wait
    between attempts instead of hammering the database (and the log) in a tight loop."""
    store = FlakyStore(home, failures=10**9)
    try:
        run = ActiveRun(
            store, store.create_run("p"), flush_every_s=0.05, batch_size=10, capture_env=False
        )
        deadline = time.monotonic() + 0.6
        i = 0
        while time.monotonic() < deadline:
            run.log({"loss": float(i)})
            i += 1
            time.sleep(0.0005)
        attempts = store.calls
        assert 1 <= attempts <= 6  # 0.1, 0.2, 0.4 s apart: not one per log() call
        store.failures_left = 0  # the database is back
        run.flush()
        assert reader.get_metric_history(run.id, "loss").values == [float(k) for k in range(i)]
        run.end()
    finally:
        store.close()


def test_a_run_whose_end_fails_is_no_longer_active(home: Path) -> None:
    """Otherwise the exit hook that ends open runs would spin on it forever."""
    store = FailingStatusStore(home)
    set_store(store)
    try:
        run = lm.start_run(project="p", capture_env=False)
        run.log({"x": 1.0})
        with pytest.raises(BackendUnavailableError):
            run.end()
        assert lm.active_run() is None
        done = threading.Event()

        def at_exit() -> None:
            api._end_open_runs()
            done.set()

        threading.Thread(target=at_exit, daemon=True).start()
        assert done.wait(5), "the exit hook did not return"
        assert store.get_metric_history(run.id, "x").values == [1.0]  # flushed before failing
    finally:
        set_store(None)
        store.close()


# -- heartbeat ------------------------------------------------------------------------------
def test_heartbeat_keeps_a_live_run_from_looking_killed(
    monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    """A heartbeat shorter than the flush interval is still honoured.

    Judged on the beats the writer records (their own timestamps), never by how late this
    process happens to look: a loaded machine may delay a beat, not shorten the interval.
    """
    monkeypatch.setenv("LUMINARY_HEARTBEAT", "0.1")  # flushes every 0.5 s
    set_store(None)
    store = lm.get_store()
    with lm.start_run(project="p", capture_env=False) as run:
        beats: list[float] = []
        deadline = time.monotonic() + 30
        while len(beats) < 12:
            assert time.monotonic() < deadline, f"only {len(beats)} heartbeats in 30 s"
            at = store.get_run(run.id).heartbeat_at
            assert at is not None
            if not beats or at.timestamp() != beats[-1]:
                beats.append(at.timestamp())
            time.sleep(0.02)
        gaps = [b - a for a, b in itertools.pairwise(beats)]
        assert min(gaps) < 0.5, gaps  # some beats came sooner than the next flush
    assert store.get_run(run.id).status is RunStatus.FINISHED


def _statuses(runs: Sequence[lm.Run]) -> Mapping[str, RunStatus]:
    return {r.name: r.status for r in runs}


def test_search_sees_every_status() -> None:
    with lm.start_run(project="p", name="ok", capture_env=False):
        pass
    with (
        pytest.raises(ValueError, match="bad"),
        lm.start_run(project="p", name="bad", capture_env=False),
    ):
        raise ValueError("bad")
    live = lm.start_run(project="p", name="live", capture_env=False)
    assert _statuses(lm.search_runs("p")) == {
        "ok": RunStatus.FINISHED,
        "bad": RunStatus.FAILED,
        "live": RunStatus.RUNNING,
    }
    assert [r.name for r in lm.search_runs("p", filter="status = 'failed'")] == ["bad"]
    live.end()
