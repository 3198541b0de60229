"""The load generator behind ``luminary bench serve``, and direct inference to compare with.

:func:`run_load` drives a running inference server in a closed loop: ``concurrency`` slots
each keep one request in flight for ``warmup`` + ``duration`` seconds; requests that complete
inside the measured window count. The request is built once from the model's metadata
(random tensors of the right names, data types and shapes) and serialised once, then
replayed (the loop itself is :mod:`~luminary.bench._loadloop`), so the generator's own cost
per request is a send, a receive and a clock read:

* gRPC: a ``ModelInferRequest`` with ``raw_input_contents``, sent as bytes through a generic
  ``grpc.aio`` call (no protobuf on the hot path; a reply counts when it is non-empty);
* HTTP: one pre-built HTTP/1.1 request (JSON header plus the binary tensor extension, outputs
  asked for in binary too) on a keep-alive connection per slot.

``processes`` > 1 spreads the slots over that many processes and merges their results, for
concurrency beyond what one Python process can drive. The server's statistics extension is
read when the measured window opens and after the run: the change in ``inference_count`` /
``execution_count`` is the mean batch the dynamic batcher formed.

:func:`run_direct` runs the same model in-process with ONNX Runtime (one intra-op thread), one
call after another: the baseline a server's throughput is measured against.

Both return a :class:`LoadResult`. Errors: :class:`~luminary.errors.BackendUnavailableError`
when the server does not answer, :class:`~luminary.errors.NotFoundError` for a model it does
not serve, :class:`~luminary.errors.InvalidArgumentError` for bad arguments; errors of
individual requests during the run are counted by status, not raised.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from luminary.bench import _loadloop
from luminary.bench._control import (
    DEFAULT_PORTS,
    PROTOCOLS,
    Control,
    Endpoint,
    ModelInfo,
    StatsSnapshot,
    parse_url,
)
from luminary.errors import InvalidArgumentError, NotFoundError, nearest
from luminary.serving import DTYPES, TensorConfig

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


@dataclass(frozen=True)
class LoadResult:
    """One measured row: a concurrency level against a server, or direct inference.

    Latencies are of successful requests completed in the measured window, in milliseconds
    (None when none succeeded). ``mean_batch`` is the server's mean executed batch in events,
    from the window's opening to the run's end (None without statistics); ``batch_sizes`` counts its
    executions by batch size.
    """

    mode: str  # "server" or "direct"
    protocol: str  # "grpc", "http" or "onnxruntime"
    model: str
    concurrency: int
    batch_size: int
    duration_s: float
    requests: int
    requests_per_s: float
    events_per_s: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    errors: dict[str, int] = field(default_factory=dict)
    mean_batch: float | None = None
    batch_sizes: dict[int, int] = field(default_factory=dict)
    processes: int = 1
    joules_per_event: float | None = None  # None: the energy was not available
    energy_source: str | None = None  # "measured" or "estimate" (no counter was readable)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["error_count"] = self.error_count
        data["batch_sizes"] = {str(k): v for k, v in sorted(self.batch_sizes.items())}
        return data


# -- inputs -------------------------------------------------------------------------------


def make_inputs(
    info: ModelInfo,
    batch_size: int = 1,
    shapes: Mapping[str, Sequence[int]] | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Random tensors for one request of ``batch_size`` events.

    ``shapes`` gives the dims per event of inputs with free dims (without the batch dim when
    the model batches); free dims not given are 1.
    """
    shapes = dict(shapes or {})
    names = [t.name for t in info.inputs]
    for name in shapes:
        if name not in names:
            msg = f"--shape names input {name!r}, which model {info.name!r} does not have; " + (
                nearest(name, names, "input")
            )
            raise InvalidArgumentError(msg)
    if info.batched:
        if batch_size > info.max_batch_size:
            msg = (
                f"batch size {batch_size} is over the max_batch_size {info.max_batch_size} "
                f"of model {info.name!r}; use --batch-size {info.max_batch_size} or less"
            )
            raise InvalidArgumentError(msg)
    elif batch_size != 1:
        msg = (
            f"model {info.name!r} does not batch (max_batch_size 0), so each request is one "
            "event; use --batch-size 1"
        )
        raise InvalidArgumentError(msg)
    rng = np.random.default_rng(seed)
    tensors = {}
    for t in info.inputs:
        dims = _event_dims(t, shapes.get(t.name), info.name)
        shape = [batch_size, *dims] if info.batched else dims
        tensors[t.name] = _random(rng, t, shape)
    return tensors


def _event_dims(t: TensorConfig, given: Sequence[int] | None, model: str) -> list[int]:
    if given is None:
        return [d if d > 0 else 1 for d in t.dims]
    given = list(given)
    fits = len(given) == len(t.dims) and all(
        g > 0 and (d < 0 or d == g) for d, g in zip(t.dims, given, strict=True)
    )
    if not fits:
        wanted = ",".join("?" if d < 0 else str(d) for d in t.dims)
        msg = (
            f"--shape {t.name}:{','.join(map(str, given))} does not fit model {model!r}, whose "
            f"input {t.name!r} has dims {wanted} per event (? is free)"
        )
        raise InvalidArgumentError(msg)
    return given


def _random(rng: np.random.Generator, t: TensorConfig, shape: list[int]) -> np.ndarray:
    dtype = DTYPES.get(t.datatype)
    if dtype is None:
        msg = (
            f"input {t.name!r} has data type {t.datatype}; the load generator makes numeric "
            f"tensors only ({', '.join(DTYPES)})"
        )
        raise InvalidArgumentError(msg)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(dtype)
    return rng.integers(0, 10, shape).astype(dtype)


# -- serialised requests ------------------------------------------------------------------

DTYPE_NAMES = {dtype: name for name, dtype in DTYPES.items()}


def grpc_request(model: str, version: str, inputs: Mapping[str, np.ndarray]) -> bytes:
    """A serialised ``ModelInferRequest`` carrying ``inputs`` in ``raw_input_contents``."""
    from luminary.serving import grpc_service_pb2 as pb

    request = pb.ModelInferRequest(model_name=model, model_version=version)
    for name, array in inputs.items():
        request.inputs.add(name=name, datatype=DTYPE_NAMES[array.dtype], shape=array.shape)
        request.raw_input_contents.append(np.ascontiguousarray(array).tobytes())
    payload: bytes = request.SerializeToString()
    return payload


def http_request(
    endpoint: Endpoint, model: str, version: str, inputs: Mapping[str, np.ndarray]
) -> bytes:
    """A whole HTTP/1.1 request: JSON header plus binary tensors, binary outputs asked for."""
    import json
    from urllib.parse import quote

    blobs = [np.ascontiguousarray(a).tobytes() for a in inputs.values()]
    header = {
        "inputs": [
            {
                "name": name,
                "datatype": DTYPE_NAMES[array.dtype],
                "shape": list(array.shape),
                "parameters": {"binary_data_size": len(blob)},
            }
            for (name, array), blob in zip(inputs.items(), blobs, strict=True)
        ],
        "parameters": {"binary_data_output": True},
    }
    head = json.dumps(header, separators=(",", ":")).encode()
    body = b"".join([head, *blobs])
    path = f"/v2/models/{quote(model, safe='')}"
    if version:
        path += f"/versions/{version}"
    lines = [
        f"POST {path}/infer HTTP/1.1",
        f"Host: {endpoint.address}",
        "Content-Type: application/octet-stream",
        f"Inference-Header-Content-Length: {len(head)}",
        f"Content-Length: {len(body)}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# -- public entry points ------------------------------------------------------------------


def probe(
    url: str | None, model: str, protocol: str = "grpc", version: str = ""
) -> tuple[Endpoint, ModelInfo]:
    """Check the server answers and serves ``model``; its address and the model's tensors."""
    endpoint = parse_url(url, protocol)
    with Control(endpoint) as control:
        return endpoint, control.model_info(model, version)


def run_load(
    url: str | None,
    model: str,
    protocol: str = "grpc",
    concurrency: int = 1,
    duration: float = 5.0,
    warmup: float = 1.0,
    batch_size: int = 1,
    *,
    version: str = "",
    shapes: Mapping[str, Sequence[int]] | None = None,
    processes: int = 1,
    progress: _loadloop.Progress | None = None,
    seed: int = 0,
    metrics_url: str | None = None,
) -> LoadResult:
    """Closed-loop load at one ``concurrency`` on the server at ``url`` (``HOST:PORT``;
    default ``localhost`` on Triton's port for ``protocol``).

    J/event comes from the server's metrics (``metrics_url``, default ``http://HOST:8002/
    metrics``): the energy it attributes to the model over the window, per event served."""
    _check_run(concurrency=concurrency, duration=duration, warmup=warmup, batch=batch_size)
    if processes < 1:
        msg = f"processes must be 1 or more, not {processes}"
        raise InvalidArgumentError(msg)
    processes = min(processes, concurrency)
    endpoint = parse_url(url, protocol)
    with Control(endpoint) as control:
        info = control.model_info(model, version)
        inputs = make_inputs(info, batch_size, shapes, seed)
        if protocol == "grpc":
            payload = grpc_request(model, version, inputs)
        else:
            payload = http_request(endpoint, model, version, inputs)
        plan = _loadloop.Plan(endpoint, payload, concurrency, warmup, duration)
        snapshots: list[StatsSnapshot | None] = []

        metrics = metrics_url or f"http://{endpoint.address.rsplit(':', 1)[0]}:8002/metrics"
        energy: list[tuple[float, str] | None] = []

        def at_open() -> None:
            snapshots.append(control.stats(model, version))
            energy.append(_server_energy(metrics, model))

        tally = _loadloop.run(plan, processes, progress, at_open)
        after = control.stats(model, version)
        energy_after = _server_energy(metrics, model)
    before = snapshots[0] if snapshots else None
    mean_batch: float | None = None
    sizes: dict[int, int] = {}
    if before is not None and after is not None:
        mean_batch, sizes = after.since(before)
    joules_per_event = source = None
    energy_before = energy[0] if energy else None
    if energy_before and energy_after and before is not None and after is not None:
        events = after.inference_count - before.inference_count
        if events > 0:
            joules_per_event = (energy_after[0] - energy_before[0]) / events
            source = energy_after[1]
    result = _result(
        "server",
        protocol,
        model,
        concurrency,
        batch_size,
        duration,
        tally,
        mean_batch=mean_batch,
        batch_sizes=sizes,
        processes=processes,
    )
    return dataclasses.replace(result, joules_per_event=joules_per_event, energy_source=source)


def _server_energy(metrics_url: str, model: str) -> tuple[float, str] | None:
    """The joules the server attributes to ``model`` so far, and their source."""
    import httpx

    try:
        text = httpx.get(metrics_url, timeout=5).text
    except httpx.HTTPError:
        return None
    total, source = 0.0, None
    for line in text.splitlines():
        if line.startswith("luminary_inference_energy_joules_total{") and (
            f'model="{model}"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
            source = "estimate" if 'source="estimate"' in line else "measured"
    return None if source is None else (total, source)


def resolve_model_file(path_or_ref: str) -> Path:
    """An ``.onnx`` file, or a registry reference (``NAME``, ``NAME@VERSION``,
    ``NAME@ALIAS``) fetched to the local cache."""
    path = Path(path_or_ref).expanduser()
    if path.is_file():
        return path
    if path.suffix == ".onnx" or "/" in path_or_ref or path.exists():
        msg = f"no model file {path}; give an .onnx file or a registry reference NAME@ALIAS"
        raise NotFoundError(msg)
    from luminary.registry import get_model

    local = get_model(path_or_ref)
    if local.version.format != "onnx":
        msg = (
            f"{local.ref} is a {local.version.format} model; direct inference runs ONNX "
            "models (export it to ONNX and register the .onnx file)"
        )
        raise InvalidArgumentError(msg)
    return local.path


def run_direct(
    path: str | Path,
    duration: float = 5.0,
    batch_size: int = 1,
    *,
    warmup: float = 1.0,
    shapes: Mapping[str, Sequence[int]] | None = None,
    progress: _loadloop.Progress | None = None,
    seed: int = 0,
) -> LoadResult:
    """The model in-process with ONNX Runtime (one intra-op thread), one call at a time,
    ``batch_size`` events a call. ``path`` is an ``.onnx`` file or a registry reference."""
    from luminary.energy import measure
    from luminary.serving import DEFAULT_MAX_BATCH_SIZE
    from luminary.serving.backends import BackendOptions, OnnxRuntimeBackend

    _check_run(concurrency=1, duration=duration, warmup=warmup, batch=batch_size)
    file = resolve_model_file(str(path))
    backend = OnnxRuntimeBackend.load(file, BackendOptions(intra_op_threads=1))
    try:
        declared = [*backend.inputs, *backend.outputs]
        batched = all(t.dims and t.dims[0] == -1 for t in declared)
        info = ModelInfo(
            name=file.stem,
            max_batch_size=DEFAULT_MAX_BATCH_SIZE if batched else 0,
            inputs=tuple(
                TensorConfig(t.name, t.datatype, t.dims[1:] if batched else t.dims)
                for t in backend.inputs
            ),
        )
        feeds = make_inputs(info, batch_size, shapes, seed)
        outputs = [t.name for t in backend.outputs]
        run = backend.run
        tally = _loadloop.Tally()
        lat = tally.latencies
        clock = time.perf_counter
        start = clock()
        opened = start + warmup
        closing = opened + duration
        next_report = start
        calls = 0
        with measure() as meter:
            while True:
                t0 = clock()
                if t0 >= closing:
                    break
                if progress is not None and t0 >= next_report:
                    progress(t0 - start)
                    next_report = t0 + 0.1
                run(feeds, outputs)
                calls += 1
                t1 = clock()
                if opened <= t1 <= closing:
                    lat.append(t1 - t0)
        if progress is not None:
            progress(warmup + duration)
    finally:
        backend.close()
    energy = meter.report
    joules_per_event = energy.total_joules / max(1, calls * batch_size)
    source = "estimate" if energy.any_estimated else "measured"
    calls = len(lat)
    result = _result(
        "direct",
        "onnxruntime",
        info.name,
        1,
        batch_size,
        duration,
        tally,
        mean_batch=float(batch_size) if calls else None,
        batch_sizes={batch_size: calls} if calls else {},
    )
    return dataclasses.replace(result, joules_per_event=joules_per_event, energy_source=source)


def _check_run(*, concurrency: int, duration: float, warmup: float, batch: int) -> None:
    problems = []
    if concurrency < 1:
        problems.append(f"concurrency must be 1 or more, not {concurrency}")
    if not duration > 0:
        problems.append(f"duration must be more than 0 s, not {duration}")
    if not warmup >= 0:
        problems.append(f"warmup must be 0 s or more, not {warmup}")
    if batch < 1:
        problems.append(f"batch size must be 1 or more, not {batch}")
    if problems:
        raise InvalidArgumentError("; ".join(problems))


def _result(
    mode: str,
    protocol: str,
    model: str,
    concurrency: int,
    batch_size: int,
    duration: float,
    tally: _loadloop.Tally,
    *,
    mean_batch: float | None,
    batch_sizes: dict[int, int],
    processes: int = 1,
) -> LoadResult:
    n = len(tally.latencies)
    p50 = p90 = p99 = mean = None
    if n:
        ms = np.asarray(tally.latencies) * 1e3
        p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
        mean = float(ms.mean())
    return LoadResult(
        mode=mode,
        protocol=protocol,
        model=model,
        concurrency=concurrency,
        batch_size=batch_size,
        duration_s=duration,
        requests=n,
        requests_per_s=n / duration,
        events_per_s=n * batch_size / duration,
        p50_ms=p50,
        p90_ms=p90,
        p99_ms=p99,
        mean_ms=mean,
        errors=dict(sorted(tally.errors.items())),
        mean_batch=mean_batch,
        batch_sizes=batch_sizes,
        processes=processes,
    )
