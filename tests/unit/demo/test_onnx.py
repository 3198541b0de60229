"""The DeepSets ONNX export: ONNX Runtime agrees with NumPy, padding is ignored, the signature."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from luminary.demo._deepsets import PARAM_NAMES, DeepSets
from luminary.demo._jets import CLASSES, FEATURES, JetSample, make_jets
from luminary.demo._onnx import build_onnx, export_onnx
from luminary.errors import InvalidArgumentError
from luminary.registry import TensorSpec, inspect_model

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def sample() -> JetSample:
    return make_jets(500)


@pytest.fixture(scope="module")
def model(sample: JetSample) -> DeepSets:
    m = DeepSets.init(10, 5, 8, seed=0)
    m.fit_normalization(sample.constituents, sample.mask)
    rng = np.random.default_rng(1)
    for name in PARAM_NAMES:  # non-zero biases, so every Add in the graph matters
        if name.endswith("bias"):
            m.params[name] += rng.normal(0, 0.1, m.params[name].shape).astype(np.float32)
    return m


@pytest.fixture(scope="module")
def onnx_path(model: DeepSets, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(model, tmp_path_factory.mktemp("onnx") / "deepsets.onnx")


@pytest.fixture(scope="module")
def session(onnx_path: Path) -> Any:
    return ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])


def run(session: Any, x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    feed = {"constituents": x.astype(np.float32), "mask": mask.astype(np.float32)}
    proba, logits = session.run(["probabilities", "logits"], feed)
    return proba, logits


@pytest.mark.parametrize("batch", [1, 64])
def test_onnx_runtime_matches_numpy(
    session: Any, model: DeepSets, sample: JetSample, batch: int
) -> None:
    x, mask = sample.constituents[:batch], sample.mask[:batch]
    proba, logits = run(session, x, mask)
    assert proba.shape == (batch, 5)
    assert proba.dtype == np.float32
    assert np.abs(proba - model.predict_proba(x, mask)).max() < TOLERANCE
    assert np.abs(logits - model.forward(x, mask)).max() < TOLERANCE
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)


def test_whole_sample_matches(session: Any, model: DeepSets, sample: JetSample) -> None:
    proba, _ = run(session, sample.constituents, sample.mask)
    ref = model.predict_proba(sample.constituents, sample.mask)
    assert np.abs(proba - ref).max() < TOLERANCE
    assert (proba.argmax(1) == ref.argmax(1)).all()


def test_padding_values_do_not_matter(session: Any, sample: JetSample) -> None:
    x, mask = sample.constituents[:64].copy(), sample.mask[:64]
    clean, _ = run(session, x, mask)
    rng = np.random.default_rng(7)
    garbage = rng.normal(0, 1e4, x.shape).astype(np.float32)
    garbage.flat[::97] = np.nan
    garbage.flat[1::89] = np.inf
    x[~mask] = garbage[~mask]
    assert not np.isfinite(x).all()
    dirty, _ = run(session, x, mask)
    np.testing.assert_array_equal(dirty, clean)


def test_constituent_dimension_is_symbolic(
    session: Any, model: DeepSets, sample: JetSample
) -> None:
    x, mask = sample.constituents[:16], sample.mask[:16]
    wider_x = np.concatenate([x, np.ones((16, 25, 10), np.float32)], axis=1)
    wider_mask = np.concatenate([mask, np.zeros((16, 25), bool)], axis=1)
    narrow = int(mask.sum(axis=1).max())
    base, _ = run(session, x, mask)
    wide, _ = run(session, wider_x, wider_mask)
    short, _ = run(session, x[:, :narrow], mask[:, :narrow])
    assert np.abs(wide - base).max() < 1e-6
    assert np.abs(short - base).max() < 1e-6
    empty, _ = run(session, x[:, :0], mask[:, :0])  # no constituents at all: rho(0)
    assert np.abs(empty - model.predict_proba(x[:, :0], mask[:, :0])).max() < TOLERANCE


def test_inspect_model_reads_the_signature(onnx_path: Path) -> None:
    info = inspect_model(onnx_path)
    assert info.format == "onnx"
    assert not info.executes_code
    assert info.inputs == (
        TensorSpec("constituents", "float32", ("batch", "constituents", 10)),
        TensorSpec("mask", "float32", ("batch", "constituents")),
    )
    assert info.outputs == (
        TensorSpec("probabilities", "float32", ("batch", 5)),
        TensorSpec("logits", "float32", ("batch", 5)),
    )
    m = info.metadata
    assert (m["producer_name"], m["opset"], m["graph_name"]) == ("luminary", 17, "deepsets")
    assert m["ir_version"] == 8  # the lowest IR that carries opset 17: older runtimes load it
    assert "DeepSets" in m["doc_string"]
    props = m["metadata_props"]
    assert props["luminary.model"] == "deepsets"
    assert json.loads(props["classes"]) == list(CLASSES)
    assert json.loads(props["features"]) == list(FEATURES)


def test_fixed_constituents_and_other_opsets(model: DeepSets, tmp_path: Path) -> None:
    path = export_onnx(model, tmp_path / "fixed.onnx", max_constituents=30, opset=13)
    info = inspect_model(path)
    assert info.inputs[0].shape == ("batch", 30, 10)
    assert info.metadata["opset"] == 13
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.zeros((2, 30, 10), np.float32)
    mask = np.zeros((2, 30), bool)
    mask[:, :3] = True
    proba, _ = run(sess, x, mask)
    assert np.abs(proba - model.predict_proba(x, mask)).max() < TOLERANCE


def test_float64_model_exports_as_float32(model: DeepSets, sample: JetSample) -> None:
    m64 = model.astype(np.float64)
    proto = build_onnx(m64)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    proba, _ = run(sess, sample.constituents[:64], sample.mask[:64])
    ref = m64.predict_proba(sample.constituents[:64], sample.mask[:64])
    assert np.abs(proba - ref).max() < 1e-4  # float32 graph vs float64 reference


def test_custom_names_and_bad_arguments(model: DeepSets, tmp_path: Path) -> None:
    names = ["q", "g", "c", "b", "t"]
    proto = build_onnx(model, classes=names)
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["classes"]) == names
    with pytest.raises(InvalidArgumentError, match="classes has 2 names"):
        build_onnx(model, classes=["a", "b"])
    with pytest.raises(InvalidArgumentError, match="opset 12"):
        build_onnx(model, opset=12)
    with pytest.raises(InvalidArgumentError, match="max_constituents"):
        build_onnx(model, max_constituents=0)
    small = DeepSets.init(4, 3, 6, seed=1)
    props = {p.key: p.value for p in build_onnx(small).metadata_props}
    assert json.loads(props["classes"]) == ["class_0", "class_1", "class_2"]
    assert json.loads(props["features"])[-1] == "feature_3"
    assert not list(tmp_path.iterdir())  # nothing written on failure
