"""Serve an ONNX model with PyTriton: the Triton anchor of the serving benchmark.

    <pytriton-venv>/bin/python benchmarks/_pytriton_serve.py MODEL.onnx --name mlp \\
        --http-port P --grpc-port Q --metrics-port R

Runs under the separate venv made by ``_tools.pytriton_python()`` (``nvidia-pytriton``,
onnxruntime, numpy), never the project's. PyTriton starts Triton 2.51 (``tritonserver``, Python
backend only) as a child process; each request goes through the Python backend stub and
PyTriton's proxy to the ``@batch`` infer function below, which runs ONNX Runtime (one thread)
in this process. Dynamic batching waits up to 100 µs, batches up to 1024 events. Every port is
bound to 127.0.0.1; the statistics endpoint is left open (PyTriton guards it with a token by
default) because perf_analyzer reads it. SIGTERM stops the server (and its children) like Ctrl-C.

The Python backend stub links ``libpython3.X.so.1.0`` by soname, which the dynamic loader may
resolve to the system's Python (Debian 12: 3.11.2) while the stub runs this interpreter's
standard library (e.g. pyenv's 3.11.7): model loading then fails with ``'_thread.RLock' object
has no attribute '_recursion_count'``. So this interpreter's own library folder goes first on
``LD_LIBRARY_PATH``, which PyTriton passes on to ``tritonserver`` and the stubs.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sysconfig
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import (
    DEFAULT_PROTECTED_ENDPOINTS,
    Triton,
    TritonConfig,
    TritonSecurityConfig,
)


def tensors(args: list[Any]) -> list[Tensor]:
    """PyTriton tensor specs for ONNX inputs/outputs (FP32 only, batch dimension dropped)."""
    specs = []
    for arg in args:
        if arg.type != "tensor(float)":
            raise SystemExit(f"{arg.name}: {arg.type} is not FP32")
        shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in arg.shape[1:])
        specs.append(Tensor(name=arg.name, dtype=np.float32, shape=shape))
    return specs


def own_libpython_first() -> None:
    """Put this interpreter's ``libpython`` folder first on ``LD_LIBRARY_PATH`` (see above)."""
    libdir, soname = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
    if libdir and soname and (Path(libdir) / soname).exists():
        paths = [libdir, *filter(None, os.environ.get("LD_LIBRARY_PATH", "").split(":"))]
        os.environ["LD_LIBRARY_PATH"] = ":".join(paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="the ONNX file")
    parser.add_argument("--name", default="mlp")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--max-batch-size", type=int, default=1024)
    parser.add_argument("--max-queue-delay-us", type=int, default=100)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    output_names = [o.name for o in session.get_outputs()]

    @batch
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(output_names, session.run(output_names, inputs), strict=True))

    config = TritonConfig(
        http_address="127.0.0.1",
        http_port=args.http_port,
        grpc_address="127.0.0.1",
        grpc_port=args.grpc_port,
        metrics_address="127.0.0.1",
        metrics_port=args.metrics_port,
    )
    open_stats = [e for e in DEFAULT_PROTECTED_ENDPOINTS if e != "statistics"]
    security = TritonSecurityConfig(restricted_endpoints=open_stats)
    # SIGTERM behaves like Ctrl-C: Triton.serve() and the context manager then stop the
    # tritonserver child and the Python backend stubs and clean the workspace.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    own_libpython_first()
    try:
        with Triton(config=config, security_config=security) as triton:
            triton.bind(
                model_name=args.name,
                infer_func=infer,
                inputs=tensors(session.get_inputs()),
                outputs=tensors(session.get_outputs()),
                config=ModelConfig(
                    batching=True,
                    max_batch_size=args.max_batch_size,
                    batcher=DynamicBatcher(max_queue_delay_microseconds=args.max_queue_delay_us),
                ),
                strict=False,
            )
            triton.serve()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
