"""Small ONNX models with random weights, for tests and benchmarks of the inference server.

Built node by node with ``onnx.helper`` (no deep-learning framework needed):

* :func:`mlp` — the small MLP of the serving benchmark (16→64→32→32→5, ReLU, softmax);
* :func:`deepsets_tagger` — the medium jet tagger: per event 20 jets, 30 constituents and 10
  features, phi 10→64→64→64 per constituent, summed per jet, rho 64→64→64→5 per jet.

Both take a free batch dimension first, so the server batches them.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from luminary._optional import require


def _onnx() -> Any:
    return require("onnx", "onnx", "building test models")


def _dense_layers(
    helper: Any,
    numpy_helper: Any,
    rng: np.random.Generator,
    x: str,
    sizes: Sequence[int],
    prefix: str,
    last_relu: bool,
) -> tuple[list[Any], list[Any], str]:
    nodes, inits = [], []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        w = (rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)).astype(np.float32)
        b = (rng.standard_normal(n_out) * 0.01).astype(np.float32)
        inits += [
            numpy_helper.from_array(w, f"{prefix}{i}.w"),
            numpy_helper.from_array(b, f"{prefix}{i}.b"),
        ]
        mm, add = f"{prefix}{i}.mm", f"{prefix}{i}.add"
        nodes.append(helper.make_node("MatMul", [x, f"{prefix}{i}.w"], [mm]))
        nodes.append(helper.make_node("Add", [mm, f"{prefix}{i}.b"], [add]))
        x = add
        if i < len(sizes) - 2 or last_relu:
            relu = f"{prefix}{i}.relu"
            nodes.append(helper.make_node("Relu", [x], [relu]))
            x = relu
    return nodes, inits, x


def _save(model: Any, path: Path) -> Path:
    onnx = _onnx()
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def mlp(path: Path, sizes: Sequence[int] = (16, 64, 32, 32, 5), seed: int = 1) -> Path:
    """Input ``x`` [batch, 16] FP32 → output ``probabilities`` [batch, 5] FP32."""
    onnx = _onnx()
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    rng = np.random.default_rng(seed)
    nodes, inits, last = _dense_layers(helper, numpy_helper, rng, "x", sizes, "l", False)
    nodes.append(helper.make_node("Softmax", [last], ["probabilities"], axis=-1))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", sizes[0]])],
        [
            helper.make_tensor_value_info(
                "probabilities", onnx.TensorProto.FLOAT, ["batch", sizes[-1]]
            )
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return _save(model, path)


def deepsets_tagger(
    path: Path,
    jets: int = 20,
    constituents: int = 30,
    features: int = 10,
    width: int = 64,
    classes: int = 5,
    seed: int = 2,
) -> Path:
    """Input ``constituents`` [batch, jets, constituents, features] → ``probabilities``
    [batch, jets, classes]."""
    onnx = _onnx()
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    rng = np.random.default_rng(seed)
    phi, phi_init, h = _dense_layers(
        helper, numpy_helper, rng, "constituents", (features, width, width, width), "phi", True
    )
    axes = numpy_helper.from_array(np.array([2], dtype=np.int64), "pool_axes")
    pool = helper.make_node("ReduceSum", [h, "pool_axes"], ["pooled"], keepdims=0)
    rho, rho_init, logits = _dense_layers(
        helper, numpy_helper, rng, "pooled", (width, width, width, classes), "rho", False
    )
    soft = helper.make_node("Softmax", [logits], ["probabilities"], axis=-1)
    graph = helper.make_graph(
        [*phi, pool, *rho, soft],
        "deepsets_tagger",
        [
            helper.make_tensor_value_info(
                "constituents",
                onnx.TensorProto.FLOAT,
                ["batch", jets, constituents, features],
            )
        ],
        [
            helper.make_tensor_value_info(
                "probabilities", onnx.TensorProto.FLOAT, ["batch", jets, classes]
            )
        ],
        [*phi_init, axes, *rho_init],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return _save(model, path)
