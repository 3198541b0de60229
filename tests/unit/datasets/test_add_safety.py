"""A blob's bytes always match its name: files that change under an add, and blobs that an
older, unverified writer left under the wrong name, never end up in a version."""

from __future__ import annotations

import os
import time
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

import luminary as lm
from luminary.datasets import _api as ds
from luminary.errors import InvalidArgumentError
from luminary.storage.blobs import VERIFIED_SINCE, BlobStore, hash_bytes
from luminary.store import get_store


def _blobs() -> BlobStore:
    blobs = get_store().blobs
    assert isinstance(blobs, BlobStore)
    return blobs


def _plant_legacy_blob(blobs: BlobStore, digest: str, wrong: bytes) -> Path:
    """Bytes under a digest they do not hash to, dated before the store verified its writes
    (what an add interrupted by a concurrent rewrite left with earlier releases)."""
    key = Path(blobs.key(digest))
    key.parent.mkdir(parents=True, exist_ok=True)
    key.write_bytes(wrong)
    past = time.time() - 86400
    os.utime(key, (past, past))
    return key


def _folder_with(tmp_path: Path, name: str, content: bytes) -> tuple[Path, str]:
    """A folder holding one file; the folder and the file's digest."""
    data = tmp_path / "data"
    data.mkdir()
    (data / name).write_bytes(content)
    return data, hash_bytes(content)


def _onnx(path: Path) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph), path)
    return path


def _rewrite_in_place(path: Path, data: bytes) -> None:
    """Rewrite a file with bytes of the same length, keeping its inode and times (what a tool
    that edits in place and restores times does): nothing a stat sees has changed."""
    before = path.stat()
    assert len(data) == before.st_size
    with path.open("r+b") as fh:
        fh.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_file_rewritten_after_it_was_hashed_is_refused_and_nothing_is_stored(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    events = data / "events.bin"
    events.write_bytes(b"A" * 4096)
    past = time.time() - 60
    os.utime(events, (past, past))
    # A reference add hashes the file (and caches the hash by path, size, mtime and inode).
    ds.add("hits", [data], mode="reference")
    old_digest = hash_bytes(b"A" * 4096)
    _rewrite_in_place(events, b"B" * 4096)  # the cached hash is now stale

    with pytest.raises(InvalidArgumentError, match="changed while it was being stored"):
        ds.add("hits", [data], mode="copy")

    blobs = _blobs()
    assert not blobs.exists(old_digest)  # never the new bytes under the old name
    assert list(Path(blobs.root).rglob(".tmp-*")) == []
    assert get_store().get_dataset_version("hits").version == 1  # no copy version was made


def test_a_blob_left_under_the_wrong_digest_is_replaced_by_the_next_add(tmp_path: Path) -> None:
    content = b"calibration constants v7\n" * 100
    data, digest = _folder_with(tmp_path, "calib.txt", content)
    key = _plant_legacy_blob(_blobs(), digest, b"X" * len(content))

    stats = ds.add("calib", [data])

    assert stats.stored_blobs == 1  # the planted blob was not trusted
    assert key.read_bytes() == content
    assert list(ds.verify(stats.version.ref)) == []
    out = ds.checkout(stats.version.ref, tmp_path / "out")
    assert (out / "calib.txt").read_bytes() == content


def test_a_sound_older_blob_is_hashed_once_then_trusted(tmp_path: Path) -> None:
    content = b"tracks" * 1000
    data, digest = _folder_with(tmp_path, "t.bin", content)
    blobs = _blobs()
    key = _plant_legacy_blob(blobs, digest, content)  # right bytes, written before the marker
    old_mtime = key.stat().st_mtime

    stats = ds.add("tracks", [data])

    assert stats.stored_blobs == 0  # verified and reused, not copied again
    marker = Path(blobs.root) / VERIFIED_SINCE
    assert key.stat().st_mtime > old_mtime
    assert key.stat().st_mtime >= marker.stat().st_mtime  # now newer than the marker
    assert blobs.reusable(digest, len(content))


def test_artifacts_and_model_files_never_reuse_a_blob_that_does_not_match(
    tmp_path: Path,
) -> None:
    weights = _onnx(tmp_path / "model.onnx")
    digest = hash_bytes(weights.read_bytes())
    blobs = _blobs()
    key = _plant_legacy_blob(blobs, digest, b"\0" * weights.stat().st_size)

    with lm.start_run(project="cms") as run:
        run.log_artifact(weights)
    assert key.read_bytes() == weights.read_bytes()
    assert blobs.verify(digest)

    _plant_legacy_blob(blobs, digest, b"\1" * weights.stat().st_size)
    version = lm.register_model("tagger", weights, project="cms")
    assert blobs.verify(version.digest)
    assert key.read_bytes() == weights.read_bytes()
