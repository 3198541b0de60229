"""``luminary store check|gc``: leftovers of killed and failed adds are found, sized and
removed, and nothing a live writer may still reference is ever removed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from luminary.datasets import _api as ds
from luminary.storage.blobs import hash_bytes
from luminary.store import BlobStore, check, gc, open_store

CLI = [sys.executable, "-m", "luminary.cli"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, check=False)


def _findings(result: subprocess.CompletedProcess[str]) -> dict[str, list[dict[str, object]]]:
    report = json.loads(result.stdout)
    out: dict[str, list[dict[str, object]]] = {}
    for f in report["findings"]:
        out.setdefault(f["kind"], []).append(f)
    return out


def _leftovers(home: Path) -> set[str]:
    blobs = home / "blobs"
    temps = {str(p) for p in blobs.rglob(".tmp-*")}
    return temps | {str(p) for p in (home / "tmp").glob("manifest-*")}


def test_a_killed_add_leaves_leftovers_that_check_finds_and_gc_removes(
    home: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(20):
        (data / f"a{i:02d}.txt").write_bytes(f"small file {i}\n".encode() * 50)
    with (data / "z-big.bin").open("wb") as fh:  # copied last: the add is killed inside it
        fh.truncate(512 << 20)
    child = subprocess.Popen(
        [*CLI, "datasets", "add", "hits", str(data)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "LUMINARY_HOME": str(home)},
    )
    try:
        deadline = time.monotonic() + 120
        while not list((home / "blobs").rglob(".tmp-*")):  # the big copy is under way
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            assert time.monotonic() < deadline, "the add never started copying"
            time.sleep(0.001)
        child.send_signal(signal.SIGKILL)
        assert child.wait(60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stderr is not None:
            child.stderr.close()

    left = _leftovers(home)
    assert left  # at least the big file's temporary
    found = _cli("store", "check", "-o", "json")
    assert found.returncode == 1, found.stderr
    kinds = _findings(found)
    assert {str(f["path"]) for f in kinds["temporary"]} == left
    unreferenced = {Path(str(f["path"])).name for f in kinds.get("unreferenced", [])}
    stored = {p.name for p in (home / "blobs").rglob("*") if len(p.name) == 64}
    assert unreferenced == stored  # no version was made: every stored blob is a leftover
    assert json.loads(found.stdout)["reclaimable_bytes"] == sum(
        int(str(f["size"])) for k in ("temporary", "unreferenced") for f in kinds.get(k, [])
    )

    young = _cli("store", "gc", "-o", "json")  # default --min-age: all of it is too fresh
    assert young.returncode == 0, young.stderr
    assert not any(f["removed"] for fs in _findings(young).values() for f in fs)
    assert _leftovers(home) == left

    dry = _cli("store", "gc", "--min-age", "0", "--dry-run", "-o", "json")
    assert _leftovers(home) == left
    assert all(not f["removed"] for fs in _findings(dry).values() for f in fs)

    done = _cli("store", "gc", "--min-age", "0", "-o", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sound"] is True
    assert _leftovers(home) == set()
    assert not [p for p in (home / "blobs").rglob("*") if len(p.name) == 64]
    assert _cli("store", "check").returncode == 0

    (data / "z-big.bin").unlink()
    version = ds.add("hits", [data]).version
    assert list(ds.verify(version.ref)) == []
    assert _cli("store", "check").returncode == 0  # every blob is referenced now


def test_gc_keeps_blobs_a_live_add_may_reference_and_removes_them_after(home: Path) -> None:
    store = open_store()
    blobs = store.blobs
    assert isinstance(blobs, BlobStore)
    try:
        with blobs.writing():
            orphan = blobs.put_bytes(b"stored by an add that has not committed yet")
            report = gc(store, min_age_s=0)
            (kept,) = report.of("unreferenced")
            assert not kept.removed
            assert "running now" in kept.kept_because
            assert blobs.exists(orphan.digest)
        report = gc(store, min_age_s=3600)  # the add is over, but the blob is young
        assert "younger than" in report.of("unreferenced")[0].kept_because
        assert blobs.exists(orphan.digest)
        report = gc(store, min_age_s=0)
        assert report.of("unreferenced")[0].removed
        assert not blobs.exists(orphan.digest)
    finally:
        store.close()


def test_a_writer_killed_while_it_held_its_lease_does_not_block_gc(home: Path) -> None:
    store = open_store()
    blobs = store.blobs
    assert isinstance(blobs, BlobStore)
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from luminary.store import BlobStore\n"
            "with BlobStore(sys.argv[1]).writing():\n"
            "    print('in', flush=True); sys.stdin.read()",
            blobs.root,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"in\n"
        assert blobs.live_writers() == 1
        child.kill()
        child.wait(60)
        assert blobs.live_writers() == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()
        store.close()


def test_check_finds_a_blob_whose_bytes_do_not_match_and_gc_removes_it(home: Path) -> None:
    store = open_store()
    blobs = store.blobs
    assert isinstance(blobs, BlobStore)
    try:
        digest = hash_bytes(b"the right bytes")
        key = Path(blobs.key(digest))
        key.parent.mkdir(parents=True)
        key.write_bytes(b"other bytes")
        (bad,) = check(store).of("mismatched")
        assert bad.path == str(key)
        assert bad.size == len(b"other bytes")
        assert check(store, verify=False).of("mismatched") == []
        assert gc(store, min_age_s=3600).of("mismatched")[0].removed  # whatever its age
        assert not key.exists()
    finally:
        store.close()


@pytest.mark.parametrize("args", [["check"], ["gc", "--dry-run"]])
def test_store_commands_refuse_a_remote_store_with_the_fix(
    args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUMINARY_URI", "http://127.0.0.1:9")
    result = _cli("store", *args)
    assert result.returncode == 1
    assert "run them on the server's machine" in result.stderr
    assert "Traceback" not in result.stderr
