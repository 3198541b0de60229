"""A grpcio server whose ModelInfer handler does a chosen share of Luminary's work.

    python benchmarks/_grpc_handler.py MODE --port P --repository DIR

Modes, each a step further than the last: ``raw`` (return a canned answer, like the echo
server), ``parse`` (parse the ModelInferRequest, canned answer), ``check`` (also Luminary's
input checks: model lookup, shapes, dtypes, NumPy views), ``full`` (Luminary's whole gRPC
path: checks, batcher, ONNX Runtime, answer), and ``spinN`` (parse, then N µs of pure Python
work). The serving benchmark replays one request against each with h2load, to show where the
per-request cost of a Python gRPC front end goes. Same server settings as Luminary's (sync
server, thread pool of 32). Binds 127.0.0.1; exits on SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import time
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

from luminary.serving import ModelRepository
from luminary.serving._core import Core
from luminary.serving._grpc import Servicer, _tensors
from luminary.serving._proto import grpc_service_pb2 as pb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--repository", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=32)
    args = parser.parse_args()
    mode: str = args.mode
    answer = pb.ModelInferResponse(model_name="mlp", model_version="1")
    answer.outputs.add(name="probabilities", datatype="FP32", shape=[1, 5])
    answer.raw_output_contents.append(bytes(20))
    canned = answer.SerializeToString()
    repo = ModelRepository()
    repo.add_folder(args.repository)
    servicer = Servicer(Core(repo))
    spin = int(mode[4:]) / 1e6 if mode.startswith("spin") else 0.0

    def handler(raw: bytes, context: Any) -> bytes:
        if mode == "raw":
            return canned
        request = pb.ModelInferRequest.FromString(raw)
        if mode == "parse":
            return canned
        if spin:
            end = time.perf_counter() + spin
            while time.perf_counter() < end:
                pass
            return canned
        if mode == "check":
            servicer.core.prepare(request.model_name, "", _tensors(request), [], {})
            return canned
        return bytes(servicer.ModelInfer(request, context).SerializeToString())

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=args.threads),
        handlers=[
            grpc.method_handlers_generic_handler(
                "inference.GRPCInferenceService",
                {"ModelInfer": grpc.unary_unary_rpc_method_handler(handler)},
            )
        ],
    )
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    server.stop(1)
    repo.close()


if __name__ == "__main__":
    main()
