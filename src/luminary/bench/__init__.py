"""Load generators: clients that measure an inference server from the outside.

* ``_loadgen`` is the closed-loop load generator behind ``luminary bench serve``: it builds one
  request from the model's metadata, replays it at a given concurrency and reads the server's
  statistics and energy; :func:`run_direct` runs the same model in-process as the baseline;
* ``_loadloop`` is its loop: slots that keep one serialised request in flight, over gRPC or
  HTTP, in one process or several;
* ``_control`` is its client for the protocol's liveness, metadata and statistics calls.

It speaks the KServe v2 / Triton protocol only, so it measures Triton as well as
:mod:`luminary.serving`, whose public names (data types, messages, backends) it uses.
"""

from __future__ import annotations

from luminary.bench._control import DEFAULT_PORTS, PROTOCOLS, Endpoint, ModelInfo, parse_url
from luminary.bench._loadgen import (
    LoadResult,
    grpc_request,
    http_request,
    make_inputs,
    probe,
    resolve_model_file,
    run_direct,
    run_load,
)

__all__ = [
    "DEFAULT_PORTS",
    "PROTOCOLS",
    "Endpoint",
    "LoadResult",
    "ModelInfo",
    "grpc_request",
    "http_request",
    "make_inputs",
    "parse_url",
    "probe",
    "resolve_model_file",
    "run_direct",
    "run_load",
]
