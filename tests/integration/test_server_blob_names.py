"""Naming a blob needs proof of possession, against a real team-mode server: a writer who knows
a digest of another project cannot name it in their own project's artifacts, model versions or
dataset versions (nor learn that it exists) until they upload the same bytes themselves; upload
sessions belong to their caller; the server reads every model file it registers."""

from __future__ import annotations

import gzip
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest

import luminary as lm
from luminary.errors import InvalidArgumentError
from luminary.storage.blobs import hash_bytes
from luminary.store import ArtifactEntry
from tests.integration.luminary_server import serve_in_thread
from tests.integration.test_server_auth import (  # noqa: F401 - the fixtures
    _NO_ORIGIN,
    Team,
    _error,
    sdk_as,
    team,
)
from tests.unit.registry.test_registry_api import make_onnx

httpx = pytest.importorskip("httpx", reason="the remote extra (luminary[remote]) is not installed")

_SECRET = b"beta's private calibration constants"


def _beta_secret(team: Team) -> str:  # noqa: F811
    """A blob only beta names (an artifact of beta's run); its digest."""
    blob = team.store.blobs.put_bytes(_SECRET)
    team.store.add_artifacts(
        team.runs["beta"], [ArtifactEntry("calib.bin", blob.digest, blob.size)]
    )
    return blob.digest


def _copy_manifest(team: Team, user: str, files: dict[str, bytes]) -> str:  # noqa: F811
    """A copy-mode manifest listing ``files``, uploaded by ``user``; its digest."""
    lines = ["#luminary-manifest 1"]
    lines += [f"{hash_bytes(b)}\t{len(b)}\t{p}" for p, b in sorted(files.items())]
    data = ("\n".join(lines) + "\n").encode()
    put = team.send("PUT", f"/blobs/{hash_bytes(data)}", user, content=data)
    assert put.status_code == 201, put.text
    return hash_bytes(data)


def _writes_naming(team: Team, digest: str, size: int) -> dict[str, httpx.Response]:  # noqa: F811
    """Every write of wanda's (writer in alpha) that names ``digest``."""
    run = team.runs["alpha"]
    manifest = _copy_manifest(team, "wanda", {"calib.bin": _SECRET})
    dataset = {
        "project": "alpha",
        "root": "/data",
        "file_count": 1,
        "total_bytes": size,
        "schema_digest": None,
    }
    model = {"project": "alpha", "digest": digest, "size": size, "format": "opaque"}
    return {
        "artifact": team.send(
            "POST", f"/runs/{run}/artifacts", "wanda", json={"entries": [["c.bin", digest, size]]}
        ),
        "model version": team.send(
            "POST", "/models/alpha-model/versions", "wanda", json={**model, "filename": "c.bin"}
        ),
        "dataset manifest": team.send(
            "POST",
            "/datasets/alpha-data/versions",
            "wanda",
            json={**dataset, "mode": "reference", "manifest_digest": digest},
        ),
        "dataset schema": team.send(
            "POST",
            "/datasets/alpha-data/versions",
            "wanda",
            json={
                **dataset,
                "mode": "reference",
                "manifest_digest": manifest,
                "schema_digest": digest,
            },
        ),
        "copy-mode file": team.send(
            "POST",
            "/datasets/alpha-copy/versions",
            "wanda",
            json={**dataset, "mode": "copy", "manifest_digest": manifest},
        ),
    }


def test_a_writer_cannot_name_another_projects_blob_until_they_upload_it(
    team: Team,  # noqa: F811
    tmp_path: Path,
) -> None:
    digest = _beta_secret(team)
    size = len(_SECRET)
    store = team.store
    before = (
        len(store.list_artifacts(team.runs["alpha"])),
        len(store.list_model_versions("alpha-model")),
        len(store.list_dataset_versions("alpha-data")),
    )
    # not told that it exists: HEAD is 404, POST /uploads opens a session
    assert team.send("HEAD", f"/blobs/{digest}", "wanda").status_code == 404
    opened = team.send("POST", "/uploads", "wanda", json={"digest": digest, "size": size})
    assert opened.status_code == 201, opened.text
    assert opened.json()["exists"] is False
    assert opened.json()["offset"] == 0
    nowhere = "f" * 64  # a blob that is not stored at all gets the same answer
    assert team.send("HEAD", f"/blobs/{nowhere}", "wanda").status_code == 404
    # nor may they name it anywhere
    for what, resp in _writes_naming(team, digest, size).items():
        msg = _error(resp, 400, "invalid_argument")
        assert digest in msg, what
        assert "upload the file first" in msg, what
    assert (
        len(store.list_artifacts(team.runs["alpha"])),
        len(store.list_model_versions("alpha-model")),
        len(store.list_dataset_versions("alpha-data")),
    ) == before
    with pytest.raises(KeyError):
        store.get_dataset("alpha-copy")
    assert team.get(f"/blobs/{digest}", "wanda").status_code == 404
    # bert, a writer in beta, holds it: beta's artifact names it
    assert team.send("HEAD", f"/blobs/{digest}", "bert").status_code == 200
    exists = team.send("POST", "/uploads", "bert", json={"digest": digest, "size": size})
    assert exists.json()["exists"] is True

    # uploading the same bytes proves possession: storing is a no-op, the upload is recorded
    put = team.send("PUT", f"/blobs/{digest}", "wanda", content=_SECRET)
    assert put.status_code == 201, put.text
    assert team.send("HEAD", f"/blobs/{digest}", "wanda").status_code == 200
    for what, resp in _writes_naming(team, digest, size).items():
        assert resp.status_code in (201, 204), (what, resp.text)
    assert team.get(f"/blobs/{digest}", "wanda").content == _SECRET  # through alpha's artifact
    # the record is durable: a server started afresh on the same database knows it
    with serve_in_thread(store, tmp_path / "spool-2", auth=True) as url:
        again = httpx.head(
            f"{url}/api/v1/blobs/{digest}",
            headers={"authorization": f"Bearer {team.tokens['wanda']}"},
        )
        assert again.status_code == 200


def test_the_rest_client_uploads_what_it_does_not_hold_and_then_names_it(
    team: Team,  # noqa: F811
    sdk_as: Any,  # noqa: F811
) -> None:
    digest = _beta_secret(team)
    sdk_as("wanda")
    store = lm.get_store()
    assert not store.blobs.exists(digest)
    entry = ArtifactEntry("calib.bin", digest, len(_SECRET))
    with pytest.raises(InvalidArgumentError, match="upload the file first"):
        store.add_artifacts(team.runs["alpha"], [entry])
    with pytest.raises(InvalidArgumentError, match="upload the file first"):
        store.create_model_version(
            "alpha-model",
            project="alpha",
            digest=digest,
            size=len(_SECRET),
            format="opaque",
            filename="calib.bin",
            actor="wanda",
            **_NO_ORIGIN,
        )
    assert store.blobs.put_bytes(_SECRET).digest == digest  # uploads: it did not hold it
    assert store.blobs.exists(digest)
    store.add_artifacts(team.runs["alpha"], [entry])
    assert [a.digest for a in store.list_artifacts(team.runs["alpha"])] == [digest]


def test_an_upload_session_belongs_to_its_caller(team: Team) -> None:  # noqa: F811
    data = b"bert's new weights" * 100
    digest, size = hash_bytes(data), len(data)
    opened = team.send("POST", "/uploads", "bert", json={"digest": digest, "size": size})
    upload = opened.json()["id"]
    sent = team.send(
        "PUT",
        f"/uploads/{upload}",
        "bert",
        content=data,
        params={"offset": 0},
    )
    assert sent.status_code == 200, sent.text
    # wanda neither sees bert's session nor completes it with the bytes he sent
    assert team.get(f"/uploads/{upload}", "wanda").status_code == 404
    assert team.send("POST", f"/uploads/{upload}/complete", "wanda").status_code == 404
    mine = team.send("POST", "/uploads", "wanda", json={"digest": digest, "size": size})
    assert mine.status_code == 201
    assert mine.json()["offset"] == 0  # her own session, empty
    early = team.send("POST", f"/uploads/{upload}/complete", "wanda")
    assert early.status_code == 409
    done = team.send("POST", f"/uploads/{upload}/complete", "bert")
    assert done.status_code == 201, done.text
    assert team.send("HEAD", f"/blobs/{digest}", "bert").status_code == 200
    assert team.send("HEAD", f"/blobs/{digest}", "wanda").status_code == 404


# -- the server reads the model file it registers -----------------------------------------
def _register(team: Team, data: bytes, fmt: str, **metadata: Any) -> httpx.Response:  # noqa: F811
    put = team.send("PUT", f"/blobs/{hash_bytes(data)}", "wanda", content=data)
    assert put.status_code == 201, put.text
    version = {
        "project": "alpha",
        "digest": hash_bytes(data),
        "size": len(data),
        "format": fmt,
        "filename": "model.bin",
        "metadata": metadata,
    }
    return team.send("POST", "/models/alpha-model/versions", "wanda", json=version)


def test_a_pickle_is_refused_whatever_format_the_client_declares(team: Team) -> None:  # noqa: F811
    raw = pickle.dumps(OrderedDict(a=1), protocol=4)
    before = len(team.store.list_model_versions("alpha-model"))
    for data in (raw, gzip.compress(raw)):
        for fmt in ("onnx", "opaque", "safetensors"):
            msg = _error(_register(team, data, fmt), 400, "invalid_argument")
            assert "refusing model file 'model.bin'" in msg, msg
            assert "allow_pickle=True" in msg
            assert "/tmp" not in msg  # names the client's file, not the server's copy
    assert len(team.store.list_model_versions("alpha-model")) == before
    # with the opt-in it is registered, as the pickle the server found
    opted = _register(team, gzip.compress(raw), "opaque", executes_code=True)
    assert opted.status_code == 201, opted.text
    assert opted.json()["format"] == "pickle"
    assert opted.json()["metadata"]["executes_code"] is True


def test_a_file_not_in_the_declared_format_is_refused_and_the_read_format_recorded(
    team: Team,  # noqa: F811
    tmp_path: Path,
) -> None:
    msg = _error(_register(team, b"\x00" * 64, "onnx"), 400, "invalid_argument")
    assert "'model.bin' is not a valid onnx model file" in msg
    # a client that claims code execution for a plain file does not get it recorded
    plain = _register(team, b"just bytes", "opaque", executes_code=True, origin="lab")
    assert plain.status_code == 201, plain.text
    assert plain.json()["metadata"] == {"origin": "lab"}
    # the signature of an ONNX file is the one the server read, not the one sent
    onnx_bytes = make_onnx(tmp_path / "m.onnx").read_bytes()
    put = team.send("PUT", f"/blobs/{hash_bytes(onnx_bytes)}", "wanda", content=onnx_bytes)
    assert put.status_code == 201
    version = {
        "project": "alpha",
        "digest": hash_bytes(onnx_bytes),
        "size": len(onnx_bytes),
        "format": "onnx",
        "filename": "m.onnx",
        "signature": {"inputs": [{"name": "forged"}]},
    }
    got = team.send("POST", "/models/alpha-model/versions", "wanda", json=version)
    assert got.status_code == 201, got.text
    assert got.json()["format"] == "onnx"
    assert [i["name"] for i in got.json()["signature"]["inputs"]] == ["constituents"]


def test_register_model_over_rest_records_what_the_server_read(
    team: Team,  # noqa: F811
    sdk_as: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    sdk_as("wanda")
    version = lm.register_model("alpha-model", make_onnx(tmp_path / "m.onnx"), project="alpha")
    assert version.format == "onnx"
    assert [s["name"] for s in version.signature["inputs"]] == ["constituents"]
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(pickle.dumps(OrderedDict(a=1)))
    with pytest.raises(InvalidArgumentError, match="allow_pickle"):
        lm.register_model("alpha-model", pkl, project="alpha")
    opted = lm.register_model("alpha-model", pkl, project="alpha", allow_pickle=True)
    assert (opted.format, opted.metadata["executes_code"]) == ("pickle", True)
