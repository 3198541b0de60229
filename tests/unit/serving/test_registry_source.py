"""Serving registry references from the embedded registry of the test's own home."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import luminary as lm
from luminary.registry._api import set_alias
from luminary.serving._batcher import Pending
from luminary.serving._errors import RetiredError, UnavailableError
from luminary.serving._repository import ModelRepository, RegistrySource
from tests.unit.serving._fakes import wait_until


@pytest.fixture
def tagger(mlp_models: dict[str, Path]) -> str:
    """``jet-tagger`` version 1 (5 classes) and 2 (3 classes, alias ``production``)."""
    lm.register_model("jet-tagger", mlp_models["five"])
    lm.register_model("jet-tagger", mlp_models["three"], alias="production")
    return "jet-tagger"


def classes(repository: ModelRepository, name: str) -> int:
    loaded = repository.get(name)
    p = Pending({"x": np.ones((2, 16), np.float32)}, 2)
    loaded.batcher.submit(p)
    assert p.wait(5.0)
    assert p.error is None
    assert p.result is not None
    return int(p.result["probabilities"].shape[1])


def test_an_alias_serves_its_version_under_the_model_name(
    repository: ModelRepository, tagger: str
) -> None:
    source = RegistrySource(f"{tagger}@production")
    assert source.watched
    repository.add(source)
    loaded = repository.get(tagger)
    assert loaded.spec.name == tagger
    assert loaded.spec.version == "2"
    assert loaded.origin == "jet-tagger@production"
    assert classes(repository, tagger) == 3


def test_moving_the_alias_then_loading_swaps_the_version(
    repository: ModelRepository, tagger: str
) -> None:
    source = RegistrySource(f"{tagger}@production")
    repository.add(source)
    old = repository.get(tagger)
    set_alias(tagger, "production", 1)
    assert source.current_version() == "1"
    repository.load(tagger)
    new = repository.get(tagger)
    assert new.spec.version == "1"
    assert classes(repository, tagger) == 5
    assert [r["version"] for r in repository.index()] == ["1"]
    with pytest.raises(RetiredError):
        old.batcher.submit(Pending({"x": np.ones((1, 16), np.float32)}, 1))


def test_the_watcher_follows_the_alias(tagger: str) -> None:
    repository = ModelRepository(poll_seconds=0.02)
    try:
        repository.add(RegistrySource(f"{tagger}@production"))
        repository.start_watching()
        set_alias(tagger, "production", 1)
        assert wait_until(lambda: repository.get(tagger).spec.version == "1")
        assert classes(repository, tagger) == 5
    finally:
        repository.close()


def test_a_pinned_version_is_not_watched(repository: ModelRepository, tagger: str) -> None:
    source = RegistrySource(f"{tagger}@1")
    assert not source.watched
    repository.add(source)
    assert repository.get(tagger).spec.version == "1"


def test_a_non_onnx_model_is_refused_with_the_remedy(
    repository: ModelRepository, tmp_path: Path
) -> None:
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"\x00\x01 not a model format anyone knows")
    version = lm.register_model("bdt", weights)
    assert version.format != "onnx"
    repository.add(RegistrySource("bdt@1"))
    [row] = repository.index()
    assert row["state"] == "UNAVAILABLE"
    assert f"bdt@1 is a {version.format} model; the server runs ONNX models" in row["reason"]
    assert "register the .onnx file" in row["reason"]
    with pytest.raises(UnavailableError, match="server runs ONNX models"):
        repository.get("bdt")


def test_an_unknown_reference_leaves_the_model_unavailable(repository: ModelRepository) -> None:
    repository.add(RegistrySource("ghost@production"))
    [row] = repository.index()
    assert row["state"] == "UNAVAILABLE"
    assert "ghost" in row["reason"]
