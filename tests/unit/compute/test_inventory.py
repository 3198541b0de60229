"""``luminary resources``: rows and advice from fabricated snapshots, and the real command."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from luminary.cli import app
from luminary.compute import _inventory as res
from luminary.compute._inventory import (
    CpuInfo,
    EnergySource,
    GiB,
    GpuInfo,
    GpuReport,
    MemoryInfo,
    ServerProcess,
    Snapshot,
    StoreInfo,
    parse_server_cmdline,
    rows,
    snapshot_dict,
)

runner = CliRunner()

SMALL_VM = Snapshot(
    host="vm",
    cpu=CpuInfo("AMD EPYC", 2, 2, (0.1, 0.2, 0.3), 2596.0, None),
    memory=MemoryInfo(total_bytes=8 * GiB, available_bytes=6 * GiB),
    gpu=GpuReport(note="no NVIDIA driver found"),
    energy=(
        EnergySource("rapl", "", False, "no /sys/class/powercap", "run on bare metal"),
        EnergySource("nvml", "", False, "no driver", "install the NVIDIA driver"),
        EnergySource("estimate", "cpu", True),
    ),
    energy_note="",
    store=StoreInfo("embedded", "sqlite:////h/luminary.db", "/h/blobs", None, "embedded"),
)

H200 = GpuInfo(
    index=0,
    name="NVIDIA H200",
    memory_used_bytes=1 * GiB,
    memory_total_bytes=141 * GiB,
    utilization_percent=3.0,
    power_w=75.0,
    power_limit_w=700.0,
    mig="disabled",
)

GPU_NODE = replace(
    SMALL_VM,
    cpu=CpuInfo("Intel Xeon Platinum", 32, 16, (40.0, 30.0, 20.0), 2000.0, 3800.0),
    memory=MemoryInfo(total_bytes=128 * GiB, available_bytes=100 * GiB),
    gpu=GpuReport(gpus=(H200,), driver="550.54"),
    energy=(
        EnergySource("rapl", "cpu", True),
        EnergySource("nvml", "gpu0", True),
        EnergySource("estimate", "cpu", True),
    ),
    servers=(
        ServerProcess(4321, "inference", "0.0.0.0", 8000, 8001, (8000, 8001, 8002), False, True),
        ServerProcess(4322, "inference", "127.0.0.1", 8000, 8001, (), True, None),
    ),
)


def by_section(snapshot: Snapshot) -> dict[str, list[res.ResourceRow]]:
    out: dict[str, list[res.ResourceRow]] = {}
    for row in rows(snapshot):
        out.setdefault(row.section, []).append(row)
    return out


def test_a_small_vm_gets_advice_for_each_resource() -> None:
    sections = by_section(SMALL_VM)
    assert list(sections) == ["cpu", "memory", "gpu", "energy", "store", "servers"]
    (cpu,) = sections["cpu"]
    assert cpu.value.startswith("2 logical, 2 physical · load 0.10 0.20 0.30 · 2596 MHz")
    assert cpu.advice.startswith("2 logical CPUs: fine for small models and tests")
    (gpu,) = sections["gpu"]
    assert gpu.value == "none: no NVIDIA driver found"
    assert gpu.advice.startswith("no GPU:")
    energy = sections["energy"]
    assert [r.name for r in energy] == ["rapl ", "nvml ", "estimate cpu"]
    assert energy[0].advice.startswith("energy: estimated only")
    assert "fix: run on bare metal" in energy[0].value
    assert "embedded SQLite" in sections["store"][0].advice
    assert sections["servers"][0].value == "none running here"


def test_a_gpu_node_gets_gpu_energy_and_server_rows() -> None:
    sections = by_section(GPU_NODE)
    (gpu,) = sections["gpu"]
    assert gpu.name == "gpu0 NVIDIA H200"
    assert gpu.value == "1.0 GiB used of 141.0 GiB · 3 % busy · 75 of 700 W · MIG disabled"
    assert "large models" in gpu.advice
    assert "MIG could split it" in gpu.advice
    assert sections["cpu"][0].advice.endswith(
        "busy now (load 40.0), so timings taken here will be noisy"
    )
    assert sections["energy"][0].advice == "energy: measured for cpu (rapl), gpu0 (nvml)"
    ready, worker = sections["servers"]
    assert ready.advice == "ready: http://127.0.0.1:8000/v2 (KServe v2)"
    assert "ready" in ready.value
    assert worker.advice == "a worker sharing its parent's ports"


def test_mig_and_partial_energy_advice() -> None:
    mig = replace(H200, mig="enabled", utilization_percent=None)
    assert res.gpu_advice(mig).startswith("MIG on")
    sources = (EnergySource("nvml", "gpu0", True), EnergySource("estimate", "cpu", True))
    assert res.energy_advice(sources, "") == (
        "energy: measured for gpu0 (nvml); estimated for cpu (marked ~ in reports)"
    )
    assert "unknown (meters did not load)" in res.energy_advice((), "meters did not load")


def test_the_snapshot_as_json_has_every_section_with_advice() -> None:
    data = json.loads(json.dumps(snapshot_dict(GPU_NODE)))
    assert set(data) == {"host", "cpu", "memory", "gpu", "energy", "store", "servers"}
    assert data["cpu"]["logical"] == 32
    assert data["gpu"]["devices"][0]["mig"] == "disabled"
    assert data["energy"]["sources"][0] == {
        "name": "rapl",
        "device": "cpu",
        "readable": True,
        "reason": "",
        "fix": "",
    }
    assert all("advice" in data[s] for s in ("cpu", "memory", "gpu", "energy", "store"))
    assert data["servers"][0]["advice"].startswith("ready")


@pytest.mark.parametrize(
    ("cmdline", "expected"),
    [
        (
            ["/v/bin/python", "/v/bin/luminary", "serve", "m@production", "--http-port", "9000"],
            {"kind": "inference", "host": "127.0.0.1", "http_port": 9000, "grpc_port": 8001},
        ),
        (
            ["python", "-m", "luminary.cli", "serve", "--http-port=0", "--no-grpc", "--host", "::"],
            {"kind": "inference", "host": "::", "http_port": 0, "grpc_port": None},
        ),
        (
            ["python", "-m", "luminary.cli", "serve", "--worker-index", "1", "--no-http"],
            {"kind": "inference", "http_port": None, "worker": True},
        ),
        (["luminary", "server", "--port", "5001"], {"kind": "store", "http_port": 5001}),
        (["luminary", "bench", "serve", "m@1"], None),
        (["python", "train.py", "--serve"], None),
        (["vim", "luminary/serve.py"], None),
    ],
)
def test_server_command_lines_are_recognised(
    cmdline: list[str], expected: dict[str, object] | None
) -> None:
    parsed = parse_server_cmdline(cmdline)
    if expected is None:
        assert parsed is None
    else:
        assert parsed is not None
        assert {k: parsed[k] for k in expected} == expected


def test_database_passwords_are_hidden() -> None:
    url = "postgresql+psycopg://alice:s3cret@db:5432/luminary"
    assert res.mask_url(url) == "postgresql+psycopg://alice:***@db:5432/luminary"
    assert res.mask_url("sqlite:////h/luminary.db") == "sqlite:////h/luminary.db"


FAKE_SERVER = textwrap.dedent(
    """
    import http.server, sys

    class Ready(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/v2/health/ready" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Ready)
    print(server.server_address[1], flush=True)
    server.serve_forever()
    """
)


@pytest.fixture
def fake_inference_server(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """A process whose command line reads ``luminary serve --http-port 0`` and that answers
    ``/v2/health/ready``; yields (pid, port)."""
    script = tmp_path / "luminary"
    script.write_text(FAKE_SERVER)
    proc = subprocess.Popen(
        [sys.executable, str(script), "serve", "--http-port", "0", "--no-grpc"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield proc.pid, port
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()


def test_running_servers_are_found_with_their_port_and_readiness(
    fake_inference_server: tuple[int, int],
) -> None:
    pid, port = fake_inference_server
    found = {p.pid: p for p in res._servers(timeout=2.0)}
    server = found[pid]
    assert server.kind == "inference"
    assert port in server.listening
    assert server.http_port == port
    assert server.ready is True


def test_the_real_command_prints_json_and_a_table() -> None:
    result = runner.invoke(app, ["resources", "-o", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["cpu"]["logical"] >= 1
    assert data["memory"]["total_bytes"] > 0
    assert "sources" in data["energy"]
    assert data["store"]["mode"] == "embedded"
    result = runner.invoke(app, ["resources"])
    assert result.exit_code == 0, result.output
    for section in ("cpu", "memory", "gpu", "energy", "store", "servers"):
        assert section in result.output
