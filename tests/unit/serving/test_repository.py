"""The model repository on folders laid out in ``tmp_path``: versions, failures, swaps."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from luminary.errors import InvalidArgumentError
from luminary.serving._batcher import Pending
from luminary.serving._errors import ModelNotFoundError, RetiredError, UnavailableError
from luminary.serving._repository import FolderSource, LoadedModel, ModelRepository
from luminary.serving.backends import BACKENDS, BackendOptions

from ._fakes import RecordingBackend

Place = Callable[[str, Path], Path]


def infer(loaded: LoadedModel, events: int = 2) -> np.ndarray:
    x = np.random.default_rng(events).standard_normal((events, 16)).astype(np.float32)
    p = Pending({"x": x}, events)
    loaded.batcher.submit(p)
    assert p.wait(5.0)
    assert p.error is None, p.error
    assert p.result is not None
    return p.result["probabilities"]


def triton_folder(root: Path, place: Place, policy: str = "") -> Path:
    """``root/tagger/{1,3}/model.onnx``: version 1 has 5 classes, version 3 has 3."""
    place("five", root / "tagger" / "1" / "model.onnx")
    place("three", root / "tagger" / "3" / "model.onnx")
    if policy:
        (root / "tagger" / "config.pbtxt").write_text(policy)
    return root


def test_the_newest_version_serves_by_default(
    repository: ModelRepository, place: Place, tmp_path: Path
) -> None:
    repository.add_folder(triton_folder(tmp_path / "models", place))
    loaded = repository.get("tagger")
    assert loaded.spec.version == "3"
    assert loaded.spec.outputs[0].dims == (3,)
    assert infer(loaded).shape == (2, 3)
    # a version the model does not have is not found: retrying elsewhere cannot help
    with pytest.raises(ModelNotFoundError, match="no version 1; its versions are 3"):
        repository.get("tagger", "1")
    assert repository.index() == [
        {"name": "tagger", "version": "3", "state": "READY", "reason": ""}
    ]


def test_version_policy_all_serves_every_version(
    repository: ModelRepository, place: Place, tmp_path: Path
) -> None:
    repository.add_folder(triton_folder(tmp_path / "models", place, "version_policy: { all: {} }"))
    assert infer(repository.get("tagger", "1")).shape == (2, 5)
    assert infer(repository.get("tagger", "3")).shape == (2, 3)
    assert repository.get("tagger").spec.version == "3"
    assert [r["version"] for r in repository.index()] == ["1", "3"]


def test_version_policy_specific_serves_the_listed_versions(
    repository: ModelRepository, place: Place, tmp_path: Path
) -> None:
    policy = "version_policy: { specific: { versions: [1] } }"
    repository.add_folder(triton_folder(tmp_path / "models", place, policy))
    assert repository.get("tagger").spec.version == "1"


def test_a_flat_onnx_file_serves_as_version_one_under_its_stem(
    repository: ModelRepository, place: Place, tmp_path: Path
) -> None:
    place("five", tmp_path / "models" / "mlp.onnx")
    (tmp_path / "models" / "README.txt").write_text("not a model")
    (tmp_path / "models" / ".cache").mkdir()
    entries = repository.add_folder(tmp_path / "models")
    assert [e.name for e in entries] == ["mlp"]
    loaded = repository.get("mlp")
    assert loaded.spec.version == "1"
    assert loaded.spec.max_batch_size > 0
    assert loaded.device == "cpu"
    probabilities = infer(loaded, 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_a_garbage_model_is_unavailable_while_its_neighbour_serves(
    repository: ModelRepository, place: Place, tmp_path: Path
) -> None:
    root = tmp_path / "models"
    place("five", root / "good" / "1" / "model.onnx")
    (root / "broken" / "1").mkdir(parents=True)
    (root / "broken" / "1" / "model.onnx").write_bytes(os.urandom(256))
    repository.add_folder(root)
    rows = {r["name"]: r for r in repository.index()}
    assert rows["good"]["state"] == "READY"
    assert rows["broken"]["state"] == "UNAVAILABLE"
    assert "onnxruntime" in rows["broken"]["reason"]
    assert "model.onnx" in rows["broken"]["reason"]
    assert not repository.ready()
    with pytest.raises(UnavailableError, match=r"'broken' is not ready: cannot load model.onnx"):
        repository.get("broken")
    assert infer(repository.get("good")).shape == (2, 5)


def test_a_folder_without_versions_is_unavailable_with_the_layout_to_use(
    repository: ModelRepository, tmp_path: Path
) -> None:
    (tmp_path / "models" / "empty").mkdir(parents=True)
    repository.add_folder(tmp_path / "models")
    [row] = repository.index()
    assert row["state"] == "UNAVAILABLE"
    assert "empty/1/model.onnx" in row["reason"]


def test_a_config_that_contradicts_the_file_makes_the_model_unavailable(
    repository: ModelRepository, place: Place, tmp_path: Path
) -> None:
    place("five", tmp_path / "models" / "mlp" / "1" / "model.onnx")
    (tmp_path / "models" / "mlp" / "config.pbtxt").write_text(
        'max_batch_size: 8\ninput [ { name: "x" data_type: TYPE_INT32 dims: [ 16 ] } ]'
    )
    repository.add_folder(tmp_path / "models")
    [row] = repository.index()
    assert row["state"] == "UNAVAILABLE"
    assert "config.pbtxt says INT32, the model file FP32" in row["reason"]


def test_config_sets_batch_size_and_instances(
    repository: ModelRepository, place: Place, tmp_path: Path
) -> None:
    place("five", tmp_path / "models" / "mlp" / "1" / "model.onnx")
    (tmp_path / "models" / "mlp" / "config.pbtxt").write_text(
        "max_batch_size: 4\ninstance_group [ { count: 2 kind: KIND_CPU } ]\n"
        "dynamic_batching { max_queue_delay_microseconds: 100 }"
    )
    repository.add_folder(tmp_path / "models")
    loaded = repository.get("mlp")
    assert (loaded.spec.max_batch_size, loaded.spec.instances) == (4, 2)
    assert len(loaded.batcher._threads) == 2
    assert infer(loaded, 4).shape == (4, 5)


def test_an_unknown_model_suggests_the_nearest_name(
    repository: ModelRepository, place: Place, tmp_path: Path
) -> None:
    place("five", tmp_path / "models" / "jet-tagger.onnx")
    repository.add_folder(tmp_path / "models")
    with pytest.raises(
        ModelNotFoundError, match=r"no model 'jet-taggr'.*did you mean 'jet-tagger'"
    ):
        repository.get("jet-taggr")


def test_an_unloaded_model_is_unavailable_and_its_batcher_retired(
    repository: ModelRepository, place: Place, tmp_path: Path
) -> None:
    place("five", tmp_path / "models" / "mlp.onnx")
    repository.add_folder(tmp_path / "models")
    old = repository.get("mlp")
    repository.unload("mlp")
    with pytest.raises(UnavailableError, match="'mlp' is not ready: unloaded"):
        repository.get("mlp")
    assert repository.index() == [
        {"name": "mlp", "version": "", "state": "UNAVAILABLE", "reason": "unloaded"}
    ]
    with pytest.raises(RetiredError):
        old.batcher.submit(Pending({"x": np.zeros((1, 16), np.float32)}, 1))
    repository.load("mlp")
    assert infer(repository.get("mlp")).shape == (2, 5)


def test_forced_load_swaps_in_the_replaced_file_and_retires_the_old_version(
    repository: ModelRepository, place: Place, tmp_path: Path
) -> None:
    place("five", tmp_path / "models" / "tagger" / "1" / "model.onnx")
    repository.add_folder(tmp_path / "models")
    old = repository.get("tagger")
    repository.load("tagger")
    assert repository.get("tagger") is old  # same origin, not forced: kept
    place("three", tmp_path / "models" / "tagger" / "1" / "model.onnx")
    changes: list[tuple[str, str]] = []
    repository._on_change = lambda name, versions: changes.append((name, versions))
    repository.load("tagger", force=True)
    new = repository.get("tagger")
    assert new is not old
    assert new.spec.outputs[0].dims == (3,)
    assert infer(new).shape == (2, 3)
    with pytest.raises(RetiredError):
        old.batcher.submit(Pending({"x": np.zeros((1, 16), np.float32)}, 1))
    assert changes == [("tagger", "1")]


def test_a_failed_reload_keeps_the_version_that_serves(
    repository: ModelRepository, place: Place, tmp_path: Path
) -> None:
    model = place("five", tmp_path / "models" / "tagger" / "1" / "model.onnx")
    repository.add_folder(tmp_path / "models")
    old = repository.get("tagger")
    model.write_bytes(b"not onnx")
    entry = repository.load("tagger", force=True)
    assert entry.state == "UNAVAILABLE"
    assert "onnxruntime" in entry.reason
    assert repository.get("tagger") is old
    assert infer(old).shape == (2, 5)


def test_one_name_from_two_sources_is_refused(
    repository: ModelRepository, place: Place, tmp_path: Path
) -> None:
    place("five", tmp_path / "a" / "mlp.onnx")
    place("five", tmp_path / "b" / "mlp" / "1" / "model.onnx")
    repository.add_folder(tmp_path / "a")
    with pytest.raises(InvalidArgumentError, match="two sources serve a model named 'mlp'"):
        repository.add(FolderSource(tmp_path / "b" / "mlp"))


def test_a_repository_path_that_is_not_a_folder_is_refused(
    repository: ModelRepository, tmp_path: Path
) -> None:
    with pytest.raises(InvalidArgumentError, match="is not a folder"):
        repository.add_folder(tmp_path / "missing")


class ExplodingBackend(RecordingBackend):
    """Fails to load with an error no backend is supposed to raise."""

    @classmethod
    def load(cls, path: Path, options: BackendOptions) -> ExplodingBackend:
        raise RuntimeError("the runtime fell over")


def test_a_model_failing_with_any_error_is_unavailable_and_the_others_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(BACKENDS, "exploding", ExplodingBackend)
    monkeypatch.setitem(BACKENDS, "recording", RecordingBackend)
    for name, backend in (("bad", "exploding"), ("good", "recording")):
        folder = tmp_path / "models" / name
        (folder / "1").mkdir(parents=True)
        (folder / "1" / "model.bin").write_bytes(b"weights")
        (folder / "config.pbtxt").write_text(
            f'backend: "{backend}"\ndefault_model_filename: "model.bin"\nmax_batch_size: 8\n'
        )
    repository = ModelRepository()
    try:
        repository.add_folder(tmp_path / "models")
        rows = {r["name"]: r for r in repository.index()}
        assert rows["good"]["state"] == "READY"
        assert rows["bad"]["state"] == "UNAVAILABLE"
        assert "the runtime fell over" in rows["bad"]["reason"]
        with pytest.raises(UnavailableError, match="the runtime fell over"):
            repository.get("bad")
    finally:
        repository.close()
