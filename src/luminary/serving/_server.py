"""The inference server: HTTP, gRPC and metrics front ends over one model repository.

:class:`InferenceServer` starts the three listeners in background threads, so it runs inside
a test or a notebook as well as under ``luminary serve``. :meth:`InferenceServer.stop` is the
graceful path SIGTERM takes: stop accepting, answer what is queued and in flight, then exit.
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from luminary._optional import available, require
from luminary.errors import InvalidArgumentError, LuminaryError
from luminary.serving._core import Core
from luminary.serving._frontend import DEFAULT_MAX_BODY, check_model_control
from luminary.serving._grpc import build_server
from luminary.serving._http import InferenceApp
from luminary.serving._metrics import MetricsServer
from luminary.serving._repository import ModelRepository
from luminary.serving._workers import bind_port

if TYPE_CHECKING:
    from luminary.energy import EnergyReport, Sampler

log = logging.getLogger("luminary.serving")


@dataclass(frozen=True)
class ServeOptions:
    """Where and how to listen. Ports as Triton's; 0 picks a free port."""

    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    http: bool = True
    grpc: bool = True
    metrics: bool = True
    grpc_threads: int = 32
    max_inflight: int = 512  # per front end; beyond it requests are refused at once
    reuse_port: bool = False  # the workers of one `luminary serve --workers N` share the ports
    max_body_bytes: int = DEFAULT_MAX_BODY  # per request: HTTP body (inflated too), gRPC message
    model_control: str = "none"  # "explicit": the repository endpoints may load and unload
    energy: bool = True  # measure the process's energy; exported with the metrics


def _listen(host: str, port: int, reuse_port: bool) -> socket.socket:
    sock = bind_port(host, port, reuse_addr=True, reuse_port=reuse_port)
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class InferenceServer:
    """The three front ends over ``repository``; ``start()``, then ``stop()``."""

    def __init__(self, repository: ModelRepository, options: ServeOptions | None = None) -> None:
        self.repository = repository
        self.options = options or ServeOptions()
        check_model_control(self.options.model_control)
        if self.options.max_body_bytes < 1:
            msg = f"max_body_bytes must be 1 or more, not {self.options.max_body_bytes}"
            raise InvalidArgumentError(msg)
        self.core = Core(repository)
        self._live = True
        self._grpc: Any = None
        self._uvicorn: Any = None
        self._http_thread: threading.Thread | None = None
        self._metrics: MetricsServer | None = None
        self._sampler: Sampler | None = None
        self.http_port = 0
        self.grpc_port = 0
        self.metrics_port = 0

    def _is_live(self) -> bool:
        return self._live

    def energy(self) -> EnergyReport | None:
        """What the server process has used since it started (None if not measured)."""
        sampler = self._sampler
        if sampler is None:
            return None
        try:
            return sampler.snapshot()
        except LuminaryError as exc:
            log.warning("energy not available: %s", exc)
            return None

    def start(self) -> None:
        """Start every front end; if one cannot (a port in use), stop the others and raise."""
        try:
            self._start()
        except BaseException:
            self.stop(grace=0)
            raise

    def _start(self) -> None:
        o = self.options
        if o.energy:
            from luminary.energy import Sampler

            try:
                self._sampler = Sampler().start()
            except LuminaryError as exc:
                log.warning("the server's energy is not measured: %s", exc)
        if o.grpc:
            address = f"[{o.host}]:{o.grpc_port}" if ":" in o.host else f"{o.host}:{o.grpc_port}"
            self._grpc, self.grpc_port = build_server(
                self.core,
                address,
                threads=o.grpc_threads,
                max_inflight=o.max_inflight,
                max_message=o.max_body_bytes,
                model_control=o.model_control,
                reuse_port=o.reuse_port,
                live=self._is_live,
            )
            self._grpc.start()
        if o.metrics:
            self._metrics = MetricsServer(
                self.repository, o.host, o.metrics_port, energy=self.energy
            )
            self.metrics_port = self._metrics.port
            self._metrics.start()
        if o.http:
            self._start_http()
        self.repository.start_watching()
        log.info(
            "serving on %s: HTTP %s, gRPC %s, metrics %s",
            o.host,
            self.http_port or "off",
            self.grpc_port or "off",
            self.metrics_port or "off",
        )

    def _start_http(self) -> None:
        uvicorn = require("uvicorn", "server", "the HTTP front end")
        o = self.options
        sock = _listen(o.host, o.http_port, o.reuse_port)
        self.http_port = int(sock.getsockname()[1])
        app = InferenceApp(
            self.core,
            live=self._is_live,
            max_inflight=o.max_inflight,
            max_body=o.max_body_bytes,
            model_control=o.model_control,
        )
        kwargs: dict[str, Any] = {
            "log_level": "warning",
            "access_log": False,
            "lifespan": "off",
            "timeout_graceful_shutdown": 30,
        }
        kwargs["loop"] = "uvloop" if available("uvloop") else "asyncio"
        kwargs["http"] = "httptools" if available("httptools") else "h11"
        config = uvicorn.Config(app, **kwargs)
        self._uvicorn = uvicorn.Server(config)
        started = threading.Event()

        def run() -> None:
            server = self._uvicorn
            original = server.startup

            async def startup(sockets: Any = None) -> None:
                await original(sockets=sockets)
                started.set()

            server.startup = startup
            server.run(sockets=[sock])
            sock.close()

        self._http_thread = threading.Thread(target=run, name="lm-http", daemon=True)
        self._http_thread.start()
        if not started.wait(30):
            msg = "the HTTP front end did not start within 30 s"
            raise RuntimeError(msg)

    def stop(self, grace: float = 30.0) -> None:
        """Stop accepting, finish queued and in-flight requests, release the models."""
        self._live = False
        waits = []
        if self._grpc is not None:
            waits.append(self._grpc.stop(grace))
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        for event in waits:
            event.wait(grace)
        if self._http_thread is not None:
            self._http_thread.join(grace)
        if self._metrics is not None:
            self._metrics.stop()
        self.repository.close()
        if self._sampler is not None:
            try:
                self._sampler.stop()
            except LuminaryError as exc:
                log.warning("energy sampler: %s", exc)

    def __enter__(self) -> InferenceServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
