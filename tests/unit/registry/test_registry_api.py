"""The registry SDK end to end on an embedded home, with real ONNX files."""

from __future__ import annotations

import pickle
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

import luminary as lm
from luminary.errors import InvalidArgumentError, NotFoundError
from luminary.lineage import lineage
from luminary.registry import _api as reg


def make_onnx(path: Path, hidden: int = 4) -> Path:
    x = helper.make_tensor_value_info("constituents", TensorProto.FLOAT, ["batch", 30, 10])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 30, 10])
    node = helper.make_node("Relu", ["constituents"], ["probabilities"])
    graph = helper.make_graph([node], f"tagger{hidden}", [x], [y])
    onnx.save(helper.make_model(graph, producer_name="test"), path)
    return path


def test_register_from_a_run_records_signature_metrics_and_lineage(tmp_path: Path) -> None:
    with lm.start_run("cms-btag", params={"lr": 0.01}) as run:
        run.log({"val_auc": 0.91})
        version = reg.register_model("jet-tagger", make_onnx(tmp_path / "m.onnx"))
    assert version.ref == "jet-tagger@1"
    assert version.source_run_id == run.id
    assert version.metrics == {"val_auc": 0.91}
    assert version.format == "onnx"
    assert version.signature["inputs"][0]["name"] == "constituents"
    assert version.signature["inputs"][0]["shape"] == ["batch", 30, 10]
    chain = lineage("jet-tagger@1")
    assert chain.run is not None
    assert chain.run.params == {"lr": 0.01}


def test_get_model_resolves_aliases_and_returns_a_verified_local_file(tmp_path: Path) -> None:
    first = make_onnx(tmp_path / "a.onnx", 4)
    second = make_onnx(tmp_path / "b.onnx", 8)
    reg.register_model("jet-tagger", first, project="cms-btag")
    reg.register_model("jet-tagger", second, project="cms-btag", alias="production")
    local = reg.get_model("jet-tagger@production")
    assert local.version.version == 2
    assert local.path.read_bytes() == second.read_bytes()
    assert reg.get_model("jet-tagger@1").path.read_bytes() == first.read_bytes()
    move = reg.set_alias("jet-tagger", "production", 1)
    assert (move.from_version, move.to_version) == (2, 1)
    assert reg.get_model("jet-tagger@production").version.version == 1
    history = reg.alias_history("jet-tagger", "production")
    assert [(m.from_version, m.to_version) for m in history] == [(None, 2), (2, 1)]


def test_pickles_are_refused_unless_allowed(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(InvalidArgumentError, match="allow_pickle"):
        reg.register_model("bdt", path, project="p")
    with pytest.raises(NotFoundError):
        lm.get_store().get_model("bdt")  # nothing was registered
    version = reg.register_model("bdt", path, project="p", allow_pickle=True)
    assert version.format == "pickle"


def test_missing_file_and_unknown_model(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        reg.register_model("x", tmp_path / "nope.onnx", project="p")
    reg.register_model("jet-tagger", make_onnx(tmp_path / "m.onnx"), project="p")
    with pytest.raises(NotFoundError, match="did you mean 'jet-tagger'"):
        reg.get_model("jet-taggr@1")


def test_a_corrupt_stored_model_is_never_returned(tmp_path: Path) -> None:
    version = reg.register_model("m", make_onnx(tmp_path / "m.onnx"), project="p")
    blobs = lm.get_store().blobs
    with blobs.fs.open(blobs.key(version.digest), "r+b") as fh:
        fh.seek(3)
        old = fh.read(1)
        fh.seek(3)
        fh.write(bytes([old[0] ^ 0xFF]))  # always a different byte
    with pytest.raises(lm.IntegrityError):
        reg.get_model("m@1", dest=tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


def test_derived_version_lineage_follows_the_parent(tmp_path: Path) -> None:
    with lm.start_run("p", params={"hidden": 4}) as run:
        reg.register_model("tagger", make_onnx(tmp_path / "a.onnx"))
    reg.register_model(
        "tagger-int8", make_onnx(tmp_path / "q.onnx", 2), project="p", parent="tagger@1"
    )
    chain = lineage("tagger-int8@1")
    assert [a.ref for a in chain.ancestors] == ["tagger@1"]
    assert chain.run is not None
    assert chain.run.id == run.id
    assert [d.ref for d in lineage("tagger@1").derived] == ["tagger-int8@1"]


def test_onnx_with_external_weights_is_refused(tmp_path: Path) -> None:
    import numpy as np
    from onnx import numpy_helper

    weights = numpy_helper.from_array(np.ones((64, 64), dtype=np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 64])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [x], [y], initializer=[weights]
    )
    path = tmp_path / "big.onnx"
    onnx.save(
        helper.make_model(graph),
        path,
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="big.weights",
        size_threshold=0,
    )
    with pytest.raises(InvalidArgumentError, match="external"):
        reg.register_model("big", path, project="p")


def test_lm_lineage_stays_callable_after_its_module_is_imported() -> None:
    import importlib

    import luminary as lm
    from luminary.lineage import Lineage

    importlib.import_module("luminary.lineage")  # sets the package attribute to the module
    with pytest.raises(NotFoundError):
        lm.lineage("no-such-model@1")
    assert callable(lm.lineage)
    assert Lineage.__name__ == "Lineage"
