"""Model-file detection and signatures: real files of every format, built in tmp_path."""

from __future__ import annotations

import gzip
import json
import os
import pathlib
import pickle
import struct
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from luminary.errors import InvalidArgumentError, MissingDependencyError
from luminary.registry import (
    FORMATS,
    ModelInfo,
    PickleNotAllowedError,
    TensorSpec,
    inspect_model,
)

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

# --------------------------------------------------------------------------------------------
# builders


def small_onnx(*, legacy_inputs: bool = False) -> Any:
    """x (batch, 3) @ W + b -> y (batch, 2); a sequence output; an unknown dim; metadata."""
    w = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(3, 2), "W")
    b = numpy_helper.from_array(np.zeros(2, dtype=np.float32), "b")
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["y"]),
        helper.make_node("SequenceConstruct", ["y"], ["seq"]),
        helper.make_node("Identity", ["ids"], ["ids_out"]),
    ]
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3]),
        helper.make_tensor_value_info("ids", TensorProto.INT64, [None, 4]),
    ]
    if legacy_inputs:  # IR < 4 style: initializers also listed as graph inputs
        inputs.append(helper.make_tensor_value_info("W", TensorProto.FLOAT, [3, 2]))
    outputs = [
        helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2]),
        helper.make_tensor_sequence_value_info("seq", TensorProto.FLOAT, None),
        helper.make_tensor_value_info("ids_out", TensorProto.INT64, None),
    ]
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, initializer=[w, b], doc_string="g")
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)],
        producer_name="unit-test",
        producer_version="1.2",
        doc_string="a tiny model",
        ir_version=8,
    )
    helper.set_model_props(model, {"author": "luminary", "classes": '["a", "b"]'})
    return model


def write_onnx(path: Path, **kwargs: Any) -> Path:
    onnx.save_model(small_onnx(**kwargs), path)
    return path


class _Touch:
    """Unpickling this creates ``target``: the proof that a pickle was (or was not) loaded."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (self.target,))


def safetensors_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """Per the spec: u64 little-endian header size, JSON header, then the packed buffer."""
    codes = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64", np.dtype(np.float16): "F16"}
    header: dict[str, Any] = {"__metadata__": metadata}
    data = b""
    for name, arr in tensors.items():
        raw = np.ascontiguousarray(arr).tobytes()
        header[name] = {
            "dtype": codes[arr.dtype],
            "shape": list(arr.shape),
            "data_offsets": [len(data), len(data) + len(raw)],
        }
        data += raw
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)  # the reference writer pads to 8 bytes with spaces
    return struct.pack("<Q", len(text)) + text + data


def xgboost_doc(n_trees: int = 3) -> dict[str, Any]:
    tree = {"left_children": [1, -1, -1], "split_conditions": [0.5, 0.1, -0.1], "id": 0}
    return {
        "learner": {
            "attributes": {"best_iteration": "2"},
            "feature_names": ["pt", "eta", "phi", "mass"],
            "feature_types": ["float", "float", "float", "float"],
            "gradient_booster": {
                "name": "gbtree",
                "model": {
                    "gbtree_model_param": {"num_parallel_tree": "1", "num_trees": str(n_trees)},
                    "trees": [tree] * n_trees,
                    "tree_info": [0] * n_trees,
                },
            },
            "learner_model_param": {
                "base_score": "5E-1",
                "num_class": "0",
                "num_feature": "4",
                "num_target": "1",
            },
            "objective": {"name": "binary:logistic", "reg_loss_param": {"scale_pos_weight": "1"}},
        },
        "version": [2, 1, 0],
    }


def ubj(value: Any) -> bytes:
    """XGBoost's UBJSON dialect: big-endian, 'L' lengths, counted arrays, typed float arrays."""
    if isinstance(value, dict):
        body = b"".join(ubj_key(k) + ubj(v) for k, v in value.items())
        return b"{" + body + b"}"
    if isinstance(value, np.ndarray):
        return b"[$d#L" + struct.pack(">q", value.size) + value.astype(">f4").tobytes()
    if isinstance(value, list):
        return b"[#L" + struct.pack(">q", len(value)) + b"".join(ubj(v) for v in value)
    if isinstance(value, bool):
        return b"T" if value else b"F"
    if isinstance(value, int):
        return b"L" + struct.pack(">q", value)
    if isinstance(value, float):
        return b"d" + struct.pack(">f", value)
    if isinstance(value, str):
        return b"S" + ubj_key(value)
    raise TypeError(value)


def ubj_key(key: str) -> bytes:
    raw = key.encode()
    return b"L" + struct.pack(">q", len(raw)) + raw


def torch_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


# --------------------------------------------------------------------------------------------
# ONNX


def test_onnx_signature_and_metadata(tmp_path: Path) -> None:
    info = inspect_model(write_onnx(tmp_path / "m.onnx"))
    assert info.format == "onnx"
    assert not info.executes_code
    assert info.inputs == (
        TensorSpec("x", "float32", ("batch", 3)),
        TensorSpec("ids", "int64", (None, 4)),
    )
    assert info.outputs == (
        TensorSpec("y", "float32", ("batch", 2)),
        TensorSpec("seq", "sequence(float32)", None),
        TensorSpec("ids_out", "int64", None),  # rank unknown
    )
    m = info.metadata
    assert m["opset"] == 17
    assert m["opset_imports"] == {"ai.onnx": 17, "ai.onnx.ml": 3}
    assert (m["producer_name"], m["producer_version"], m["ir_version"]) == ("unit-test", "1.2", 8)
    assert (m["graph_name"], m["graph_doc_string"]) == ("tiny", "g")
    assert m["doc_string"] == "a tiny model"
    assert m["metadata_props"] == {"author": "luminary", "classes": '["a", "b"]'}
    assert (m["initializers"], m["parameters"], m["initializer_dtypes"]) == (2, 8, {"float32": 2})
    assert m["nodes"] == 4
    assert m["op_types"]["MatMul"] == 1
    assert m["external_data_files"] == []
    json.dumps(info.to_dict())  # the registry stores it as JSON


def test_onnx_signature_agrees_with_a_full_onnx_load(tmp_path: Path) -> None:
    path = write_onnx(tmp_path / "m.onnx")
    full = onnx.load(path)
    info = inspect_model(path)
    assert [t.name for t in info.inputs] == [v.name for v in full.graph.input]
    assert [t.name for t in info.outputs] == [v.name for v in full.graph.output]
    assert info.metadata["producer_name"] == full.producer_name


def test_onnx_initializers_listed_as_inputs_are_not_inputs(tmp_path: Path) -> None:
    info = inspect_model(write_onnx(tmp_path / "m.onnx", legacy_inputs=True))
    assert [t.name for t in info.inputs] == ["x", "ids"]


def test_onnx_is_detected_by_content_whatever_the_name(tmp_path: Path) -> None:
    info = inspect_model(write_onnx(tmp_path / "model.bin"))
    assert info.format == "onnx"
    assert info.inputs[0] == TensorSpec("x", "float32", ("batch", 3))


def test_onnx_external_data_is_listed_and_never_read(tmp_path: Path) -> None:
    model = small_onnx()
    path = tmp_path / "big.onnx"
    onnx.save_model(
        model, path, save_as_external_data=True, location="big.weights", size_threshold=0
    )
    assert (tmp_path / "big.weights").exists()
    (tmp_path / "big.weights").unlink()  # inspecting must not need the weights
    info = inspect_model(path)
    assert info.format == "onnx"
    assert info.metadata["external_data_files"] == ["big.weights"]
    assert info.metadata["parameters"] == 8
    assert info.inputs[0].name == "x"


def test_onnx_big_constant_nodes_are_skipped_not_lost(tmp_path: Path) -> None:
    big = numpy_helper.from_array(np.ones((256, 256), np.float32), "c")  # 256 KiB in a node
    nodes = [
        helper.make_node("Constant", [], ["k"], value=big),
        helper.make_node("Add", ["x", "k"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "const",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [256, 256])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [256, 256])],
    )
    path = tmp_path / "const.onnx"
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    info = inspect_model(path)
    assert info.metadata["op_types"] == {"Add": 1, "Constant": 1}
    assert info.inputs == (TensorSpec("x", "float32", (256, 256)),)


def test_corrupted_onnx_is_an_invalid_argument_naming_path_and_reason(tmp_path: Path) -> None:
    data = small_onnx().SerializeToString()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidArgumentError, match="not a valid onnx") as exc:
        inspect_model(truncated)
    assert str(truncated) in str(exc.value)
    assert "truncated" in str(exc.value) or "past the end" in str(exc.value)

    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(np.random.default_rng(1).bytes(512))
    with pytest.raises(InvalidArgumentError, match=r"garbage\.onnx"):
        inspect_model(garbage)

    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(InvalidArgumentError, match="empty"):
        inspect_model(empty)


def test_truncated_onnx_without_the_extension_is_opaque(tmp_path: Path) -> None:
    data = small_onnx().SerializeToString()
    path = tmp_path / "blob"
    path.write_bytes(data[: len(data) // 2])
    assert inspect_model(path).format == "opaque"


def test_missing_onnx_package_is_a_missing_dependency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_onnx(tmp_path / "m.onnx")
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"Reading ONNX signatures.*luminary\[onnx\]"):
        inspect_model(path)


# --------------------------------------------------------------------------------------------
# pickles: refused by default, never loaded


def test_raw_pickle_is_refused_with_the_opt_in_named(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}, protocol=4))
    with pytest.raises(PickleNotAllowedError) as exc:
        inspect_model(path)
    message = str(exc.value)
    assert str(path) in message
    assert "pickle (protocol 4)" in message
    assert "executes arbitrary Python code" in message
    assert "allow_pickle=True" in message
    assert "--allow-pickle" in message
    assert isinstance(exc.value, InvalidArgumentError)
    assert exc.value.info.format == "pickle"


def test_pickle_is_accepted_with_allow_pickle(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(np.arange(3), protocol=5))
    info = inspect_model(path, allow_pickle=True)
    assert info.format == "pickle"
    assert info.executes_code
    assert info.inputs == info.outputs == ()
    assert info.metadata["pickle_protocol"] == 5
    assert any(g.startswith("numpy.") for g in info.metadata["pickle_globals"])
    assert info.metadata["pickle_scan_complete"] is True


@pytest.mark.parametrize("protocol", [0, 1, 2, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("allow", [False, True])
def test_inspecting_a_pickle_never_unpickles_it(tmp_path: Path, protocol: int, allow: bool) -> None:
    target = tmp_path / "pwned"
    path = tmp_path / "payload.data"  # no telling extension: detected by content
    path.write_bytes(pickle.dumps(_Touch(target), protocol=protocol))
    if allow:
        info = inspect_model(path, allow_pickle=True)
    else:
        with pytest.raises(PickleNotAllowedError) as exc:
            inspect_model(path)
        info = exc.value.info
        assert "pathlib.Path" in str(exc.value)  # what loading it would import
    assert info.format == "pickle"
    # protocol >= 4 names the method; older ones fetch it with getattr(pathlib.Path, "touch")
    assert any(g.startswith("pathlib.Path") for g in info.metadata["pickle_globals"])
    assert not target.exists()
    pickle.loads(path.read_bytes())  # the control: the payload is live
    assert target.exists()


def test_large_text_protocol_pickle_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(pickle.dumps([f"item {i}" for i in range(60_000)], protocol=0))
    assert path.stat().st_size > 1 << 20  # more than the sniffed prefix
    info = inspect_model(path, allow_pickle=True)
    assert info.metadata["detected"] == "a Python pickle (text protocol 0/1)"


def test_pickle_extensions_are_refused_even_when_compressed(tmp_path: Path) -> None:
    path = tmp_path / "model.joblib"
    path.write_bytes(gzip.compress(pickle.dumps([1, 2, 3])))
    with pytest.raises(PickleNotAllowedError, match="compressed Python pickle"):
        inspect_model(path)
    info = inspect_model(path, allow_pickle=True)
    assert info.executes_code
    assert "pickle_globals" not in info.metadata  # compressed: not scanned


def test_format_override_cannot_launder_a_pickle(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    path.write_bytes(pickle.dumps({"a": 1}))
    for fmt in ("opaque", "onnx", "safetensors"):
        with pytest.raises(PickleNotAllowedError):
            inspect_model(path, format=fmt)


def test_format_pickle_declares_a_pickle(tmp_path: Path) -> None:
    path = tmp_path / "weird"
    path.write_bytes(b"not recognisable")
    with pytest.raises(PickleNotAllowedError, match="declared a pickle"):
        inspect_model(path, format="pickle")
    assert inspect_model(path, format="pickle", allow_pickle=True).executes_code


# --------------------------------------------------------------------------------------------
# torch archives


def test_torch_save_zip_is_a_pickle(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    path = torch_zip(
        tmp_path / "weights.pt",
        {
            "archive/data.pkl": pickle.dumps(_Touch(target), protocol=2),
            "archive/byteorder": b"little",
            "archive/data/0": b"\x00" * 16,
            "archive/version": b"3\n",
            "archive/.data/serialization_id": b"123",
        },
    )
    with pytest.raises(PickleNotAllowedError, match=r"torch\.save pickle archive.*allow_pickle"):
        inspect_model(path)
    info = inspect_model(path, allow_pickle=True)
    assert (info.format, info.executes_code) == ("pickle", True)
    assert "pathlib.Path" in info.metadata["pickle_globals"]
    assert info.metadata["archive_name"] == "archive"
    assert not target.exists()


def torchscript_members(data_pkl: bytes) -> dict[str, bytes]:
    return {
        "model/data.pkl": data_pkl,
        "model/code/__torch__/model.py": b"class Net(Module):\n  def forward(self, x): ...\n",
        "model/code/__torch__/model.py.debug_pkl": b"\x80\x02).",
        "model/constants.pkl": b"\x80\x02).",
        "model/version": b"3\n",
        "model/byteorder": b"little",
        "model/data/0": b"\x00" * 32,
        "model/extra/notes.txt": b"hello",
    }


def ts_data_pkl() -> bytes:
    """The opcodes TorchScript writes: a __torch__ class rebuilt from a dict."""
    return (
        b"\x80\x02c__torch__.model\nNet\nq\x00)\x81q\x01}q\x02X\x08\x00\x00\x00trainingq\x03\x88sb."
    )


def test_torchscript_archive_is_recognised_and_not_executing(tmp_path: Path) -> None:
    path = torch_zip(tmp_path / "scripted.pt", torchscript_members(ts_data_pkl()))
    info = inspect_model(path)
    assert info.format == "torchscript"
    assert not info.executes_code
    m = info.metadata
    assert m["archive_name"] == "model"
    assert m["version"] == "3"
    assert m["code_files"] == ["code/__torch__/model.py", "code/__torch__/model.py.debug_pkl"]
    assert m["extra_files"] == ["extra/notes.txt"]
    assert m["tensor_records"] == 1
    assert m["files"] == 8
    assert inspect_model(path, format="torchscript") == info


def test_torchscript_lookalike_with_foreign_globals_is_a_pickle(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    members = torchscript_members(pickle.dumps(_Touch(target), protocol=2))
    path = torch_zip(tmp_path / "sneaky.pt", members)
    with pytest.raises(PickleNotAllowedError, match=r"laid out like TorchScript.*pathlib\.Path"):
        inspect_model(path)
    assert not target.exists()


def test_other_zips_are_opaque(tmp_path: Path) -> None:
    path = tmp_path / "arrays.npz"
    np.savez(path, a=np.arange(3))
    info = inspect_model(path)
    assert info.format == "opaque"
    assert info.metadata["members"] == ["a.npy"]
    with pytest.raises(InvalidArgumentError, match="not a TorchScript archive"):
        inspect_model(path, format="torchscript")


# --------------------------------------------------------------------------------------------
# safetensors, XGBoost, opaque


def test_safetensors_header_is_read(tmp_path: Path) -> None:
    tensors: dict[str, np.ndarray] = {
        "layer.weight": np.ones((4, 3), dtype=np.float32),
        "layer.bias": np.zeros(3, dtype=np.float32),
        "steps": np.array([7], dtype=np.int64),
    }
    path = tmp_path / "model.safetensors"
    path.write_bytes(safetensors_bytes(tensors, {"format": "pt"}))
    info = inspect_model(path)
    assert info.format == "safetensors"
    assert not info.executes_code
    assert info.inputs == info.outputs == ()
    assert info.metadata["tensors"] == 3
    assert info.metadata["dtypes"] == {"F32": 2, "I64": 1}
    assert info.metadata["parameters"] == 16
    assert info.metadata["user_metadata"] == {"format": "pt"}
    renamed = tmp_path / "weights.bin"
    renamed.write_bytes(path.read_bytes())
    assert inspect_model(renamed).format == "safetensors"  # content, not extension


def test_broken_safetensors_is_an_invalid_argument(tmp_path: Path) -> None:
    good = safetensors_bytes({"w": np.ones(4, dtype=np.float32)}, {})
    path = tmp_path / "cut.safetensors"
    path.write_bytes(good[:-4])  # the tensor data is cut short
    with pytest.raises(InvalidArgumentError, match=r"cut\.safetensors.*tensor data ends"):
        inspect_model(path)


def test_xgboost_json(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text(json.dumps(xgboost_doc(3)))
    info = inspect_model(path)
    assert info.format == "xgboost-json"
    assert not info.executes_code
    m = info.metadata
    assert (m["num_feature"], m["num_class"], m["num_target"]) == (4, 0, 1)
    assert (m["objective"], m["booster"], m["num_trees"]) == ("binary:logistic", "gbtree", 3)
    assert m["base_score"] == 0.5
    assert m["xgboost_version"] == "2.1.0"
    assert m["feature_names"] == ["pt", "eta", "phi", "mass"]
    assert m["attributes"] == {"best_iteration": "2"}
    multi = xgboost_doc(6)
    multi["learner"]["learner_model_param"] |= {"num_class": "3", "base_score": "[1E-1,2E-1,7E-1]"}
    path.write_text(json.dumps(multi))
    m = inspect_model(path).metadata
    assert (m["num_class"], m["num_trees"], m["base_score"]) == (3, 6, [0.1, 0.2, 0.7])


def test_xgboost_ubj(tmp_path: Path) -> None:
    doc = xgboost_doc(2)
    doc["learner"]["gradient_booster"]["model"]["trees"] = [
        {"split_conditions": np.linspace(0, 1, 1000, dtype=np.float32), "id": i} for i in range(2)
    ]
    path = tmp_path / "model.ubj"
    path.write_bytes(ubj(doc))
    info = inspect_model(path)
    assert info.format == "xgboost-ubj"
    assert (info.metadata["num_feature"], info.metadata["num_trees"]) == (4, 2)
    assert info.metadata["objective"] == "binary:logistic"
    cut = tmp_path / "cut.ubj"
    cut.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InvalidArgumentError, match=r"cut\.ubj.*not a valid xgboost-ubj"):
        inspect_model(cut)


def test_other_json_and_random_bytes_are_opaque(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text('{"hidden": 32}')
    assert inspect_model(config) == ModelInfo("opaque")
    rng = np.random.default_rng(0)
    for i in range(20):
        blob = tmp_path / f"blob{i}.dat"
        data = rng.bytes(4096)
        blob.write_bytes(b"\x01" + data if data[0] == 0x80 else data)
        info = inspect_model(blob)
        assert info.format == "opaque", i
        assert not info.executes_code
        assert inspect_model(blob, format="opaque") == info


# --------------------------------------------------------------------------------------------
# arguments and the dict form


def test_paths_that_are_not_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="is a directory"):
        inspect_model(tmp_path)
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        inspect_model(tmp_path / "nope.onnx")


def test_format_argument(tmp_path: Path) -> None:
    path = write_onnx(tmp_path / "m.onnx")
    assert inspect_model(path, format="onnx").format == "onnx"
    assert inspect_model(path, format="opaque") == ModelInfo("opaque")
    with pytest.raises(InvalidArgumentError, match="not a valid safetensors"):
        inspect_model(path, format="safetensors")
    with pytest.raises(InvalidArgumentError, match=r"unknown model format 'tf'.*onnx"):
        inspect_model(path, format="tf")
    assert set(FORMATS) >= {"onnx", "torchscript", "safetensors", "pickle", "opaque"}


def test_model_info_round_trips_through_json(tmp_path: Path) -> None:
    info = inspect_model(write_onnx(tmp_path / "m.onnx"))
    again = ModelInfo.from_dict(json.loads(json.dumps(info.to_dict())))
    assert again == info
    assert info.to_dict()["inputs"][1] == {"name": "ids", "dtype": "int64", "shape": [None, 4]}


def test_path_like_and_str_paths(tmp_path: Path) -> None:
    path = write_onnx(tmp_path / "m.onnx")
    assert inspect_model(os.fspath(path)) == inspect_model(path)
