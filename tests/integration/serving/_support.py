"""Helpers for the inference server's integration tests: model folders, the reference
answers from in-process ONNX Runtime, free ports and ``luminary serve`` as a subprocess."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from luminary.testing.models import deepsets_tagger, mlp

# The mlp's configuration: batching limits Luminary must report back over both protocols.
MLP_CONFIG = """\
name: "mlp"
platform: "onnxruntime_onnx"
max_batch_size: 64
dynamic_batching {
  max_queue_delay_microseconds: 500
  preferred_batch_size: [4, 8]
}
"""
MLP_MAX_BATCH = 64
TAGGER_SHAPE = (20, 30, 10)  # jets, constituents, features per event


@dataclass(frozen=True)
class ModelFolder:
    """A model repository on disk and the files of the models in it."""

    root: Path
    files: dict[str, Path] = field(default_factory=dict)


def mlp_with_logits(path: Path, seed: int) -> Path:
    """The mlp with a second output, ``logits`` (before the softmax)."""
    import onnx

    mlp(path, seed=seed)
    model = onnx.load(str(path))
    graph = model.graph
    softmax = next(node for node in graph.node if node.op_type == "Softmax")
    graph.node.append(onnx.helper.make_node("Identity", [softmax.input[0]], ["logits"]))
    graph.output.append(
        onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", 5])
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def hit_counter(path: Path) -> Path:
    """Integer tensors: ``hits`` [batch, 4] UINT8 → ``total`` [batch, 1] INT64 (their sum)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Cast", ["hits"], ["wide"], to=TensorProto.INT64),
        helper.make_node("ReduceSum", ["wide", "axes"], ["total"], keepdims=1),
    ]
    graph = helper.make_graph(
        nodes,
        "hit_counter",
        [helper.make_tensor_value_info("hits", TensorProto.UINT8, ["batch", 4])],
        [helper.make_tensor_value_info("total", TensorProto.INT64, ["batch", 1])],
        [numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")],
    )
    return save_graph(graph, path)


def save_graph(graph: Any, path: Path) -> Path:
    """An ONNX graph saved as a checked opset-17 model at ``path``."""
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def build_model_folder(root: Path) -> ModelFolder:
    """``mlp`` (Triton layout with config.pbtxt), ``mlp_auto`` (Triton layout, no
    configuration, outputs ``probabilities`` and ``logits``), ``tagger`` and ``counter``
    (flat files; the counter takes and gives integers)."""
    files = {
        "mlp": mlp(root / "mlp" / "1" / "model.onnx"),
        "mlp_auto": mlp_with_logits(root / "mlp_auto" / "1" / "model.onnx", seed=7),
        "tagger": deepsets_tagger(root / "tagger.onnx"),
        "counter": hit_counter(root / "counter.onnx"),
    }
    (root / "mlp" / "config.pbtxt").write_text(MLP_CONFIG, encoding="utf-8")
    return ModelFolder(root, files)


def start_server(
    folder: Path | None = None,
    *sources: Any,
    serve_options: dict[str, Any] | None = None,
    **repository: Any,
) -> Any:
    """An in-process :class:`~luminary.serving.InferenceServer` on free ports, started, over
    the models in ``folder`` and ``sources``; ``serve_options``: ServeOptions' fields beyond
    the ports; ``repository``: ModelRepository's options."""
    from luminary.serving import InferenceServer, ModelRepository, ServeOptions

    repo = ModelRepository(**repository)
    if folder is not None:
        repo.add_folder(folder)
    for source in sources:
        repo.add(source)
    options = ServeOptions(http_port=0, grpc_port=0, metrics_port=0, **(serve_options or {}))
    server = InferenceServer(repo, options)
    server.start()
    return server


class Reference:
    """The answers in-process ONNX Runtime gives for the same models and inputs."""

    def __init__(self, files: dict[str, Path]) -> None:
        import onnxruntime as ort

        self._sessions = {
            name: ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            for name, path in files.items()
            if name != "counter"  # its answer is a sum
        }

    def __call__(
        self, model: str, feeds: dict[str, np.ndarray], output: str = "probabilities"
    ) -> np.ndarray:
        (out,) = self._sessions[model].run([output], feeds)
        return np.asarray(out)


def open_http_client(port: int, **options: Any) -> Any:
    """tritonclient's HTTP client on ``127.0.0.1:port``, closed at most once.

    ``InferenceServerClient.__del__`` closes again, joining its gevent pool from whichever
    thread the garbage collector runs on; gevent refuses a foreign thread and pytest turns the
    ignored exception into a failure. A closed client's second close does nothing here.
    """
    import tritonclient.http as httpclient

    class Client(httpclient.InferenceServerClient):  # type: ignore[misc]
        _closed = False

        def close(self) -> None:
            if not self._closed:
                self._closed = True
                super().close()

    return Client(f"127.0.0.1:{port}", **options)


def mlp_input(events: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((events, 16)).astype(np.float32)


def tagger_input(events: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((events, *TAGGER_SHAPE)).astype(np.float32)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


ANNOUNCE = re.compile(
    r"Luminary inference server on \S+: HTTP (\d+), gRPC (\d+), metrics (\d+)", re.S
)


@dataclass
class ServeProcess:
    """``luminary serve`` running as a subprocess; ``lines`` collects what it printed."""

    proc: subprocess.Popen[str]
    lines: queue.Queue[str]
    output: list[str] = field(default_factory=list)

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 60) -> re.Match[str]:
        """The first match of ``pattern`` in the output so far (lines joined by spaces)."""
        deadline = time.monotonic() + timeout
        while True:
            match = pattern.search(" ".join(self.output))
            if match is not None:
                return match
            left = deadline - time.monotonic()
            if left <= 0 or (self.proc.poll() is not None and self.lines.empty()):
                raise AssertionError(
                    f"luminary serve did not print {pattern.pattern!r} (exit status "
                    f"{self.proc.poll()}); output:\n" + "\n".join(self.output)
                )
            with contextlib.suppress(queue.Empty):
                self.output.append(self.lines.get(timeout=min(left, 0.2)).strip())

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, then the exit status (the output is read to the end)."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


@contextlib.contextmanager
def luminary_serve(*args: str) -> Iterator[ServeProcess]:
    """Run ``python -m luminary.cli serve ARGS``; killed at the end if still running."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", "NO_COLOR": "1"}
    cmd = [sys.executable, "-m", "luminary.cli", "serve", *args]
    with subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # Ctrl-C in the terminal reaches pytest only
    ) as proc:
        lines: queue.Queue[str] = queue.Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line)

        reader = threading.Thread(target=pump, name="serve-output", daemon=True)
        reader.start()
        try:
            yield ServeProcess(proc, lines)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # the whole group: workers too
                proc.wait(10)
            reader.join(10)
