"""``luminary serve --workers N``: N server processes sharing the HTTP and gRPC ports.

Each worker is a full server (own models, batcher and front ends) bound with SO_REUSEPORT, so
the kernel spreads connections over them. The parent serves the metrics port, gathering each
worker's metrics with a ``worker`` label, and forwards SIGTERM so every worker drains.

The ports are shared with this server's own workers only: the parent first checks that no
other process holds them, then keeps a bound (not listening) socket on each for as long as it
runs, so another server cannot join the group and take a share of the traffic. Each worker
watches a pipe from the parent on its standard input: when the parent dies, even by SIGKILL,
the pipe closes and the worker stops as on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from http.server import ThreadingHTTPServer
from typing import BinaryIO

from luminary.errors import InvalidArgumentError
from luminary.serving._metrics import handler_for


def bind_port(
    host: str,
    port: int,
    *,
    reuse_addr: bool,
    reuse_port: bool,
    flag: str = "",
    fix: str = "choose another port",
) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not listening); a port that cannot be bound is an
    :class:`~luminary.errors.InvalidArgumentError` naming it, the option that set it
    (``flag``) and ``fix``."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    if reuse_addr:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        where = f" ({flag})" if flag else ""
        msg = f"cannot listen on {host}:{port}{where}: {exc.strerror}; {fix}"
        raise InvalidArgumentError(msg) from exc
    return sock


def hold_port(host: str, port: int, flag: str) -> socket.socket:
    """A bound, not listening, SO_REUSEPORT socket on ``port`` (0: a free one), after checking
    that no other process holds it: only sockets that also set SO_REUSEPORT (the workers)
    can bind the port while it is held, and none of them without this check."""
    # SO_REUSEADDR: a connection in TIME_WAIT is no owner
    with bind_port(
        host,
        port,
        reuse_addr=True,
        reuse_port=False,
        flag=flag,
        fix="another process holds the port. Stop it, or choose another port",
    ) as probe:
        port = int(probe.getsockname()[1])
    return bind_port(host, port, reuse_addr=False, reuse_port=True, flag=flag)


def watch_parent(stream: BinaryIO) -> threading.Thread:
    """In a worker: SIGTERM to itself (a graceful stop) when ``stream``, the pipe from the
    parent, reaches its end, which happens when the parent exits however it dies."""

    def watch() -> None:
        while stream.read(1 << 12):
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="lm-parent-watch", daemon=True)
    thread.start()
    return thread


def _with_label(line: str, worker: int) -> str:
    name, _, rest = line.partition("{")
    if rest:
        return f'{name}{{worker="{worker}",{rest}'
    name, _, value = line.partition(" ")
    return f'{name}{{worker="{worker}"}} {value}'


def merge_metrics(texts: list[str]) -> str:
    """Join workers' Prometheus texts family by family, adding a ``worker`` label."""
    families: dict[str, list[str]] = {}
    headers: dict[str, list[str]] = {}
    for worker, text in enumerate(texts):
        current = ""
        for line in text.splitlines():
            if line.startswith("# HELP "):
                current = line.split()[2]
                headers.setdefault(current, []).append(line)
                families.setdefault(current, [])
            elif line.startswith("# TYPE "):
                current = line.split()[2]
                if len(headers.get(current, [])) < 2:
                    headers.setdefault(current, []).append(line)
                families.setdefault(current, [])
            elif line and not line.startswith("#"):
                families.setdefault(current, []).append(_with_label(line, worker))
    lines: list[str] = []
    for name, samples in families.items():
        lines += headers.get(name, [])[:2]
        lines += samples
    return "\n".join(lines) + "\n"


def _arg_value(argv: list[str], flag: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def run_workers(argv: list[str], workers: int, host: str, metrics_port: int) -> None:
    args = list(argv[1:])
    extra: list[str] = []
    held: list[socket.socket] = []
    try:
        for flag, default, off in (
            ("--http-port", "8000", "--no-http"),
            ("--grpc-port", "8001", "--no-grpc"),
        ):
            if off in args:
                continue
            value = _arg_value(args, flag) or default
            if not value.isdigit():
                msg = f"{flag} {value!r} is not a port number"
                raise InvalidArgumentError(msg)
            held.append(hold_port(host, int(value), flag))
            extra += [flag, str(held[-1].getsockname()[1])]
        _run(args, extra, workers, host, metrics_port)
    finally:
        for sock in held:
            sock.close()


def _run(args: list[str], extra: list[str], workers: int, host: str, metrics_port: int) -> None:
    children: list[subprocess.Popen[str]] = []
    metrics_ports: list[int] = []
    for index in range(workers):
        cmd = [
            sys.executable,
            "-m",
            "luminary.cli",
            *args,
            *extra,
            "--workers",
            "1",
            "--worker-index",
            str(index),
        ]
        # stdin: a pipe only this process writes to; it closes when this process dies
        child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        children.append(child)
    try:
        for child in children:
            assert child.stdout is not None
            line = child.stdout.readline().split()
            if len(line) != 4 or line[0] != "ready":
                msg = f"a worker failed to start (exit status {child.wait()})"
                raise InvalidArgumentError(msg)
            metrics_ports.append(int(line[3]))
            print(f"worker {child.pid}: HTTP {line[1]}, gRPC {line[2]}", flush=True)
        httpd = _metrics_server(host, metrics_port, metrics_ports)
        print(f"{workers} workers; metrics on {host}:{httpd.server_address[1]}", flush=True)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        while not stop.wait(0.5):
            if any(c.poll() is not None for c in children):
                break
        httpd.shutdown()
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            child.wait()


def _metrics_server(host: str, port: int, ports: list[int]) -> ThreadingHTTPServer:
    def gather() -> bytes:
        texts = []
        for p in ports:
            with urllib.request.urlopen(f"http://127.0.0.1:{p}/metrics", timeout=5) as r:
                texts.append(r.read().decode())
        return merge_metrics(texts).encode()

    httpd = ThreadingHTTPServer((host, port), handler_for(gather))
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, name="lm-metrics", daemon=True).start()
    return httpd
