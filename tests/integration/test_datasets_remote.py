"""Datasets on a real S3 server (SeaweedFS): files referenced in place, and a blob store on S3."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import luminary as lm
from luminary.datasets import _api as ds
from luminary.demo._jets import make_jets
from luminary.demo._rootio import write_jets_root
from tests._components import require
from tests.integration.remote_servers import S3Server, Unavailable, seaweedfs_s3, unique_name


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    try:
        with seaweedfs_s3(tmp_path_factory.mktemp("seaweedfs")) as server:
            yield server
    except Unavailable as exc:
        require("s3", str(exc))


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3Server:
    """Credentials and endpoint the way a user sets them: the standard AWS variables."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "luminary-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "luminary-test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    return s3_server


def _s3(server: S3Server) -> Any:
    import s3fs

    return s3fs.S3FileSystem(**server.storage_options, skip_instance_cache=True)


@pytest.fixture
def s3_data(s3_env: S3Server, tmp_path: Path) -> str:
    local = tmp_path / "upload"
    local.mkdir()
    write_jets_root(make_jets(250, seed=3), local / "jets.root")
    pq.write_table(pa.table({"pt": np.arange(60, dtype=np.float32)}), local / "meta.parquet")
    url = f"s3://{s3_env.bucket}/{unique_name('data')}"
    fs = _s3(s3_env)
    for path in local.iterdir():
        fs.put_file(str(path), f"{url}/{path.name}")
    return url


def test_reference_mode_on_s3_reads_schemas_verifies_and_iterates(
    s3_data: str, s3_env: S3Server
) -> None:
    stats = ds.add("s3-jets", [s3_data], mode="reference")
    v = stats.version
    assert v.root == s3_data
    assert [e.path for e in ds.files(v)] == ["jets.root", "meta.parquet"]
    schemas = ds.schemas(v)
    assert schemas["jets.root"]["tables"][0]["entries"] == 250
    assert schemas["meta.parquet"]["tables"][0]["entries"] == 60
    assert list(ds.verify("s3-jets@1")) == []
    assert sum(len(b) for b in ds.open("s3-jets@1", pattern="*.root")) == 250

    _s3(s3_env).pipe_file(f"{s3_data}/meta.parquet", b"PAR1 replaced")
    assert {p.path: p.kind for p in ds.verify("s3-jets@1")} == {"meta.parquet": "size"}


def test_blob_store_on_s3_holds_a_copied_dataset(
    s3_env: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUMINARY_BLOBS", f"s3://{s3_env.bucket}/{unique_name('blobs')}")
    lm.set_store(None)
    folder = tmp_path / "data"
    folder.mkdir()
    write_jets_root(make_jets(120, seed=4), folder / "jets.root")
    (folder / "notes.txt").write_text("run 2 calibration")
    v = ds.add("jets", [folder]).version
    assert lm.get_store().blobs.url.startswith("s3://")
    assert list(ds.verify("jets@1")) == []
    out = ds.checkout("jets@1", tmp_path / "out")
    assert (out / "notes.txt").read_text() == "run 2 calibration"
    assert (out / "jets.root").read_bytes() == (folder / "jets.root").read_bytes()
    assert sum(len(b) for b in ds.open(v.ref, pattern="*.root")) == 120
