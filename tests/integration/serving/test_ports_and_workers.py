"""A port another server holds makes ``luminary serve`` exit with an error naming the port (no
silent sharing through SO_REUSEPORT), and the workers of ``--workers N`` stop when their parent
is killed with SIGKILL."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import Any

from tests.integration.serving._support import free_port, luminary_serve

WORKER = re.compile(r"worker (\d+): HTTP \d+, gRPC \d+")
READY = re.compile(r"(\d+) workers; metrics on")


def _gone(pid: int) -> bool:
    """No such process, or a zombie waiting for its new parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_a_grpc_port_held_by_another_server_is_an_error(server: Any, model_folder: Any) -> None:
    args = ["--repository", str(model_folder.root), "--http-port", "0", "--metrics-port", "0"]
    with luminary_serve(*args, "--grpc-port", str(server.grpc_port)) as serve:
        status = serve.proc.wait(120)
        serve.wait_for(re.compile(r"gRPC"), timeout=10)
        output = " ".join(serve.output)
    assert status != 0
    assert str(server.grpc_port) in output
    assert "in use" in output


def test_workers_refuse_a_port_held_by_another_server(server: Any, model_folder: Any) -> None:
    args = ["--repository", str(model_folder.root), "--workers", "2", "--metrics-port", "0"]
    with luminary_serve(*args, "--http-port", "0", "--grpc-port", str(server.grpc_port)) as serve:
        status = serve.proc.wait(120)
        serve.wait_for(re.compile(str(server.grpc_port)), timeout=10)
    assert status != 0
    assert "--grpc-port" in " ".join(serve.output)


def test_workers_stop_when_their_parent_is_killed(model_folder: Any) -> None:
    ports = ["--http-port", str(free_port()), "--grpc-port", str(free_port())]
    args = ["--repository", str(model_folder.root), "--workers", "2", "--metrics-port", "0"]
    with luminary_serve(*args, *ports) as serve:
        serve.wait_for(READY, timeout=120)
        pids = [int(p) for p in WORKER.findall(" ".join(serve.output))]
        assert len(pids) == 2
        os.kill(serve.proc.pid, signal.SIGKILL)
        serve.proc.wait(30)
        deadline = time.monotonic() + 120  # generous: the workers drain, then exit
        while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        alive = [pid for pid in pids if not _gone(pid)]
        for pid in alive:  # do not leave them behind if the test fails
            os.kill(pid, signal.SIGKILL)
        assert not alive, f"workers {alive} outlived their parent"
