"""Export the NumPy DeepSets tagger to ONNX, built node by node with ``onnx.helper`` (no torch).

The graph computes exactly the forward pass of :mod:`luminary.demo._deepsets`::

    constituents (batch, N, F) float32, mask (batch, N) float32: 1.0 real, 0.0 padding
    z        = (constituents - norm.mean) * (1 / norm.std)
    h        = Relu(Relu(z @ phi.0.weight + phi.0.bias) @ phi.1.weight + phi.1.bias)
    pooled   = ReduceSum_N(Where(mask != 0, h, 0)) * (1 / pool.scale)
    logits   = Relu(pooled @ rho.0.weight + rho.0.bias) @ rho.1.weight + rho.1.bias
    probabilities = Softmax(logits)

The reciprocals are float32 constants computed the way NumPy does, so ONNX Runtime agrees with
:meth:`DeepSets.predict_proba` to float32 rounding.  Masking uses ``Where`` rather than a
multiplication: padded slots may hold anything, even NaN or inf, without touching the output
(the NumPy model never reads them either).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from luminary._optional import require
from luminary.demo._deepsets import DeepSets, export_weights
from luminary.demo._jets import CLASSES, FEATURES
from luminary.errors import InvalidArgumentError

if TYPE_CHECKING:
    from onnx import ModelProto

__all__ = ["INPUT_NAMES", "MIN_OPSET", "OUTPUT_NAMES", "build_onnx", "export_onnx"]

INPUT_NAMES: tuple[str, ...] = ("constituents", "mask")
OUTPUT_NAMES: tuple[str, ...] = ("probabilities", "logits")
MIN_OPSET = 13  # ReduceSum and Unsqueeze take their axes as an input from opset 13 on
_BATCH = "batch"
_CONSTITUENTS = "constituents"


def export_onnx(
    model: DeepSets,
    path: str | os.PathLike[str],
    *,
    max_constituents: int | None = None,
    opset: int = 17,
    classes: Sequence[str] | None = None,
    features: Sequence[str] | None = None,
) -> Path:
    """Write ``model`` as an ONNX file at ``path`` (atomically) and return the path.

    Inputs ``constituents`` float32 ``(batch, N, F)`` and ``mask`` float32 ``(batch, N)``;
    outputs ``probabilities`` (softmax) and ``logits``, float32 ``(batch, C)``.  ``N`` is the
    symbolic dimension ``"constituents"`` unless ``max_constituents`` fixes it.  ``classes`` and
    ``features`` name the outputs and input features in the model metadata; by default the demo's
    :data:`~luminary.demo._jets.CLASSES` and :data:`~luminary.demo._jets.FEATURES` when the sizes
    match, else ``class_0``, ``feature_0`` ...  The model passes ``onnx.checker`` (full check).
    """
    proto = build_onnx(
        model,
        max_constituents=max_constituents,
        opset=opset,
        classes=classes,
        features=features,
    )
    import onnx

    out = Path(os.fspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        onnx.save_model(proto, tmp)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def build_onnx(
    model: DeepSets,
    *,
    max_constituents: int | None = None,
    opset: int = 17,
    classes: Sequence[str] | None = None,
    features: Sequence[str] | None = None,
) -> ModelProto:
    """The checked ``ModelProto`` that :func:`export_onnx` writes."""
    require("onnx", "onnx", "Exporting the DeepSets tagger to ONNX")
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    latest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= latest:
        msg = f"opset {opset!r} is not supported; use {MIN_OPSET} to {latest} (default 17)"
        raise InvalidArgumentError(msg)
    if max_constituents is not None and (
        isinstance(max_constituents, bool) or int(max_constituents) < 1
    ):
        msg = f"max_constituents must be a positive int or None, got {max_constituents!r}"
        raise InvalidArgumentError(msg)
    class_names = _names(classes, CLASSES, model.n_classes, "class", "classes")
    feature_names = _names(features, FEATURES, model.n_features, "feature", "features")

    w = export_weights(model)  # float32 copies
    inv_std = (1 / model.norm_std).astype(np.float32)  # what DeepSets._forward multiplies by
    inv_scale = np.array(model.dtype.type(1 / model.pool_scale), dtype=np.float32)
    inits = {
        "norm.mean": w["norm.mean"],
        "norm.inv_std": inv_std,
        "pool.inv_scale": inv_scale,
        "zero": np.array(0.0, dtype=np.float32),
        "axes.features": np.array([2], dtype=np.int64),
        "axes.constituents": np.array([1], dtype=np.int64),
    } | {k: w[k] for k in model.params}
    initializers = [numpy_helper.from_array(np.ascontiguousarray(v), k) for k, v in inits.items()]

    def dense(x: str, layer: str, relu: bool) -> tuple[list[onnx.NodeProto], str]:
        out = f"{layer}.out"
        nodes = [
            helper.make_node("MatMul", [x, f"{layer}.weight"], [f"{layer}.matmul"]),
            helper.make_node("Add", [f"{layer}.matmul", f"{layer}.bias"], [out]),
        ]
        if relu:
            nodes.append(helper.make_node("Relu", [out], [f"{layer}.relu"]))
            out = f"{layer}.relu"
        return nodes, out

    nodes = [
        helper.make_node("Sub", ["constituents", "norm.mean"], ["centered"]),
        helper.make_node("Mul", ["centered", "norm.inv_std"], ["z"]),
    ]
    h = "z"
    for layer in ("phi.0", "phi.1"):
        more, h = dense(h, layer, relu=True)
        nodes += more
    nodes += [
        helper.make_node("Cast", ["mask"], ["mask.bool"], to=TensorProto.BOOL),
        helper.make_node("Unsqueeze", ["mask.bool", "axes.features"], ["mask.expanded"]),
        helper.make_node("Where", ["mask.expanded", h, "zero"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axes.constituents"], ["summed"], keepdims=0),
        helper.make_node("Mul", ["summed", "pool.inv_scale"], ["pooled"]),
    ]
    more, r = dense("pooled", "rho.0", relu=True)
    nodes += more
    more, _ = dense(r, "rho.1", relu=False)
    nodes += more
    nodes += [
        helper.make_node("Identity", ["rho.1.out"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]

    n_dim: int | str = _CONSTITUENTS if max_constituents is None else int(max_constituents)
    f32 = TensorProto.FLOAT
    inputs = [
        helper.make_tensor_value_info("constituents", f32, [_BATCH, n_dim, model.n_features]),
        helper.make_tensor_value_info("mask", f32, [_BATCH, n_dim]),
    ]
    outputs = [
        helper.make_tensor_value_info("probabilities", f32, [_BATCH, model.n_classes]),
        helper.make_tensor_value_info("logits", f32, [_BATCH, model.n_classes]),
    ]
    graph = helper.make_graph(
        nodes,
        "deepsets",
        inputs,
        outputs,
        initializer=initializers,
        doc_string="DeepSets jet tagger: phi MLP per constituent, masked sum, rho MLP, softmax.",
    )
    opset_imports = [helper.make_opsetid("", opset)]
    proto = helper.make_model(
        graph,
        opset_imports=opset_imports,
        ir_version=helper.find_min_ir_version_for(opset_imports),
        producer_name="luminary",
        producer_version=_luminary_version(),
        doc_string=(
            f"Luminary DeepSets jet tagger: {model.n_features} features per constituent, "
            f"hidden width {model.hidden}, {model.n_classes} classes "
            f"({', '.join(class_names)}), sum pooling / {model.pool_scale:g}. Inputs: "
            "constituents (batch, N, F) float32 and mask (batch, N) float32, 1.0 for a real "
            "constituent and 0.0 for padding (padded values are ignored). Outputs: "
            "probabilities (softmax) and logits, (batch, C) float32."
        ),
    )
    helper.set_model_props(
        proto,
        {
            "luminary.model": "deepsets",
            "classes": json.dumps(class_names),
            "features": json.dumps(feature_names),
            "luminary.hidden": str(model.hidden),
            "luminary.pool_scale": repr(model.pool_scale),
        },
    )
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _names(
    given: Sequence[str] | None, default: Sequence[str], n: int, stem: str, what: str
) -> list[str]:
    if given is None:
        return list(default) if len(default) == n else [f"{stem}_{i}" for i in range(n)]
    names = [str(x) for x in given]
    if len(names) != n:
        msg = f"{what} has {len(names)} names {names!r}; the model has {n} {what}"
        raise InvalidArgumentError(msg)
    return names


def _luminary_version() -> str:
    from luminary import __version__

    return __version__
