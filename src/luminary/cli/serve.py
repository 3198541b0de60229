"""``luminary serve``: the inference server (KServe v2 / Triton protocol, HTTP and gRPC)."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from luminary.cli._output import err, out

REFS = typer.Argument(
    help="Registry models to serve: NAME, NAME@VERSION or NAME@ALIAS (an alias is followed: "
    "when it moves, the new version is swapped in)."
)
REPOSITORY = typer.Option(
    "--repository",
    "-r",
    help="A folder of models: DIR/<model>/<version>/model.onnx (optional config.pbtxt) or "
    "DIR/<model>.onnx.",
)
HOST = typer.Option("--host", help="Interface to bind; 0.0.0.0 exposes the server.")
HTTP_PORT = typer.Option("--http-port", min=0, max=65535, help="HTTP/REST port (0: any free).")
GRPC_PORT = typer.Option("--grpc-port", min=0, max=65535, help="gRPC port (0: any free).")
METRICS_PORT = typer.Option("--metrics-port", min=0, max=65535, help="Prometheus metrics port.")
INSTANCES = typer.Option(
    "--instances", min=1, help="Model instances (threads running batches) per model."
)
THREADS = typer.Option(
    "--threads", min=1, help="ONNX Runtime intra-op threads per instance (config.pbtxt wins)."
)
WORKERS = typer.Option(
    "--workers",
    min=1,
    help="Server processes sharing the ports (SO_REUSEPORT); each loads its own models.",
)
MAX_INFLIGHT = typer.Option(
    "--max-inflight",
    min=1,
    help="Requests in flight per front end and process; beyond it requests are refused at "
    "once (HTTP 503, gRPC RESOURCE_EXHAUSTED) so clients can fall back.",
)
GRPC_THREADS = typer.Option(
    "--grpc-threads",
    min=1,
    help="gRPC handler threads per process: how many gRPC requests are in flight at once "
    "(fewer is faster for a small model on one core; more lets bigger batches form).",
)
POLL = typer.Option("--poll", min=0.1, help="Seconds between checks of followed aliases.")
NO_HTTP = typer.Option("--no-http", help="Do not start the HTTP front end.")
NO_GRPC = typer.Option("--no-grpc", help="Do not start the gRPC front end.")
MODEL_CONTROL = typer.Option(
    "--model-control",
    help="none: the models are fixed at start and the repository load/unload endpoints are "
    "refused (HTTP 503, gRPC UNAVAILABLE), as Triton's mode NONE; explicit: any client that "
    "reaches the ports may load and unload models (Triton's mode EXPLICIT).",
)
MAX_BODY_BYTES = typer.Option(
    "--max-body-bytes",
    min=1,
    help="Largest request accepted: an HTTP body (also once inflated, for gzip or deflate) "
    "or a gRPC message. Larger ones are refused (HTTP 413, gRPC RESOURCE_EXHAUSTED).",
)
WORKER_INDEX = typer.Option("--worker-index", hidden=True)


def build_repository(
    refs: list[str], repository: Path | None, instances: int, threads: int, poll: float
) -> Any:
    from luminary.errors import InvalidArgumentError
    from luminary.serving import ModelRepository, RegistrySource

    if not refs and repository is None:
        msg = (
            "nothing to serve: name registry models (luminary serve jet-tagger@production) "
            "or a folder (luminary serve --repository DIR)"
        )
        raise InvalidArgumentError(msg)
    repo = ModelRepository(instances=instances, threads=threads, poll_seconds=poll)
    if repository is not None:
        repo.add_folder(repository)
    for ref in refs:
        repo.add(RegistrySource(ref))
    return repo


def serve(
    refs: Annotated[list[str] | None, REFS] = None,
    repository: Annotated[Path | None, REPOSITORY] = None,
    host: Annotated[str, HOST] = "127.0.0.1",
    http_port: Annotated[int, HTTP_PORT] = 8000,
    grpc_port: Annotated[int, GRPC_PORT] = 8001,
    metrics_port: Annotated[int, METRICS_PORT] = 8002,
    instances: Annotated[int, INSTANCES] = 1,
    threads: Annotated[int, THREADS] = 1,
    workers: Annotated[int, WORKERS] = 1,
    max_inflight: Annotated[int, MAX_INFLIGHT] = 512,
    grpc_threads: Annotated[int, GRPC_THREADS] = 32,
    poll: Annotated[float, POLL] = 2.0,
    no_http: Annotated[bool, NO_HTTP] = False,
    no_grpc: Annotated[bool, NO_GRPC] = False,
    model_control: Annotated[str, MODEL_CONTROL] = "none",
    max_body_bytes: Annotated[int, MAX_BODY_BYTES] = 64 << 20,
    worker_index: Annotated[int, WORKER_INDEX] = -1,
) -> None:
    """Serve models over the KServe v2 / Triton inference protocol until Ctrl-C or SIGTERM
    (which finishes queued requests first). tritonclient, perf_analyzer and CMSSW's
    SonicTriton connect unchanged."""
    from luminary.serving import check_model_control

    check_model_control(model_control)
    if workers > 1:
        from luminary.serving import run_workers

        run_workers(sys.argv, workers, host, metrics_port)
        return

    from luminary.serving import InferenceServer, ServeOptions

    as_worker = worker_index >= 0
    if as_worker:
        from luminary.serving import watch_parent

        watch_parent(sys.stdin.buffer)
    with err.status("loading models…", spinner="dots") if not as_worker else _null():
        repo = build_repository(list(refs or []), repository, instances, threads, poll)
    options = ServeOptions(
        host=host,
        http_port=http_port,
        grpc_port=grpc_port,
        metrics_port=0 if as_worker else metrics_port,
        http=not no_http,
        grpc=not no_grpc,
        max_inflight=max_inflight,
        grpc_threads=grpc_threads,
        reuse_port=as_worker,
        max_body_bytes=max_body_bytes,
        model_control=model_control,
    )
    server = InferenceServer(repo, options)
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        server.start()
        if as_worker:
            print(f"ready {server.http_port} {server.grpc_port} {server.metrics_port}", flush=True)
        else:
            _announce(server, repo)
        while not stop.wait(0.5):
            pass
        if not as_worker:
            out.print("stopping: finishing queued requests…")
        server.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not as_worker:
        out.print("Luminary inference server stopped")


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _announce(server: Any, repo: Any) -> None:
    from luminary.cli._output import new_table

    host = server.options.host
    out.print(
        f"Luminary inference server on {host}: HTTP {server.http_port or 'off'}, "
        f"gRPC {server.grpc_port or 'off'}, metrics {server.metrics_port or 'off'}"
    )
    table = new_table("Models")
    for column in ("model", "version", "state", "device", "source / reason"):
        table.add_column(column)
    for row in repo.index():
        entry = repo.entry(row["name"])
        loaded = entry.versions.get(row["version"]) if row["version"] else None
        table.add_row(
            row["name"],
            row["version"] or "-",
            row["state"],
            loaded.device if loaded else "-",
            loaded.origin if loaded else row["reason"],
        )
    out.print(table)
