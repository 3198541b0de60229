"""Luminary's inference server against its anchors, side by side on one machine.

    .venv/bin/python benchmarks/serving.py [--quick] [--json results.json]

The server runs as ``luminary serve`` pinned to CPU 0 (``taskset -c 0``); every load generator
is a C/C++ program pinned to CPU 1: Triton's ``perf_analyzer`` (fetched by ``_tools.py``) for
the protocol-level measurements, ``h2load`` to replay one serialised request against Luminary
and against bare echo servers alike. What is measured:

1. Small MLP (16→64→32→32→5), batch-1 requests, concurrency 1, 8, 32, 128, gRPC and HTTP
   (binary tensors): events/s and p50/p90/p99 latency (perf_analyzer); gRPC streaming
   (``ModelStreamInfer``) at 8 and 32.
2. Front-end floors at 32 concurrent requests, same generator (h2load): a bare grpcio echo
   server (sync, thread pool) vs Luminary's gRPC ModelInfer, and a bare ASGI echo (uvicorn,
   httptools, uvloop) vs Luminary's HTTP infer, each replaying one serialised request.
3. Requests of 256 events (small MLP, concurrency 8).
4. Medium jet tagger (DeepSets, per event 20 jets, 30 constituents, 10 features), 32
   clients over gRPC and over HTTP; the mean batch the server formed (from its statistics)
   is then run in-process with ONNX Runtime on the same core: the ceiling.
5. Direct inference: each model in-process, one event per call, on CPU 0.
6. Overload: HTTP at 128 connections against a server allowing 32 in flight: how fast the
   excess is refused (latency of the 503 answers) and what happens to the p99 of the accepted
   requests. h2load retries a refused request at once, so the offered load is a storm.
7. ``--workers 2``: the server on both cores (the generator then shares a core with it).
8. Memory: 16 processes each running the tagger in-process vs one server plus 16 thin
   client processes.
9. Triton: where the ``nvidia-pytriton`` package installs (into a separate virtual environment
   in the cache folder), Triton 2.51 serving the same MLP through its Python backend
   (PyTriton ``@batch``, ONNX Runtime inside), pinned to CPU 0 like Luminary.
10. Where a Python gRPC front end's time goes: grpcio servers whose handler does more and
    more of Luminary's work (``_grpc_handler.py``: canned answer, parse, input checks, pure
    Python spin of 20 and 40 µs, the full path), each replayed with h2load, with the server's
    user CPU per request.

The machine is small and shared: every figure is a median of ``--repeats`` runs where it is
repeated, and the load average is printed with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _tools import grpc_frame, kserve_infer_request, run_h2load, run_perf_analyzer

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
SERVER_CPU, CLIENT_CPU = 0, 1
TAGGER_SHAPE = (20, 30, 10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server on {port} did not become ready")


@contextmanager
def server(repo: Path, *extra: str, cpu: int | None = SERVER_CPU) -> Iterator[dict[str, int]]:
    ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    cmd = [PY, "-m", "luminary.cli", "serve", "--repository", str(repo)]
    cmd += ["--http-port", str(ports["http"]), "--grpc-port", str(ports["grpc"])]
    cmd += ["--metrics-port", str(ports["metrics"]), *extra]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(ports["http"])
        ports["pid"] = proc.pid
        yield ports
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def stats(port: int, model: str) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/{model}/stats") as r:
        s = json.load(r)["model_stats"][0]
    return {"events": s["inference_count"], "executions": s["execution_count"]}


def rss_mb(pid: int) -> float:
    import psutil

    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def pa(
    model: str,
    port: int,
    protocol: str,
    c: int,
    ms: int,
    batch: int = 1,
    streaming: bool = False,
) -> dict[str, float]:
    return run_perf_analyzer(
        model,
        f"127.0.0.1:{port}",
        protocol,
        c,
        batch_size=batch,
        measurement_ms=ms,
        cpu=CLIENT_CPU,
        extra_args=[
            "--stability-percentage",
            "30",
            "--max-trials",
            "8",
            *(["--streaming"] if streaming else []),
        ],
    )


def median_of(fn, repeats: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    runs = [fn() for _ in range(repeats)]
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def in_process(path: Path, shape: tuple[int, ...], batch: int, seconds: float) -> float:
    """Events/s of ONNX Runtime (one thread) at ``batch`` events per call, pinned to CPU 0."""
    code = (
        "import os,sys,time,numpy as np,onnxruntime as ort;"
        f"os.sched_setaffinity(0,{{{SERVER_CPU}}});"
        "so=ort.SessionOptions();so.intra_op_num_threads=1;so.inter_op_num_threads=1;"
        f"s=ort.InferenceSession({str(path)!r},so,providers=['CPUExecutionProvider']);"
        f"x=np.random.rand({batch},*{shape!r}).astype('f4');n=s.get_inputs()[0].name;"
        "[s.run(None,{n:x}) for _ in range(20)];k=0;t=time.perf_counter();"
        f"exec('while time.perf_counter()-t<{seconds}:\\n s.run(None,{{n:x}});k+=1');"
        f"print(k*{batch}/(time.perf_counter()-t))"
    )
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def http_body(model_input: str, shape: tuple[int, ...]) -> tuple[bytes, int]:
    data = bytes(4 * int(np.prod(shape)))
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": model_input,
                    "datatype": "FP32",
                    "shape": list(shape),
                    "parameters": {"binary_data_size": len(data)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    return head + data, len(head)


def echo(kind: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    cmd = ["taskset", "-c", str(SERVER_CPU), PY, str(ROOT / "benchmarks" / "_echo.py"), kind]
    proc = subprocess.Popen([*cmd, "--port", str(port)], stdout=subprocess.DEVNULL)
    deadline = time.time() + 20
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.1)
    raise RuntimeError(f"echo server {kind} did not start")


def h2_grpc(port: int, payload: Path, seconds: float) -> dict[str, float]:
    return run_h2load(
        f"http://127.0.0.1:{port}/inference.GRPCInferenceService/ModelInfer",
        payload,
        ["content-type: application/grpc", "te: trailers"],
        clients=1,
        streams=32,
        duration_s=seconds,
        cpu=CLIENT_CPU,
    )


def h2_http(
    port: int, path: str, payload: Path, json_size: int, seconds: float, clients: int = 32
) -> dict[str, float]:
    return run_h2load(
        f"http://127.0.0.1:{port}{path}",
        payload,
        ["content-type: application/octet-stream", f"inference-header-content-length: {json_size}"],
        clients=clients,
        duration_s=seconds,
        cpu=CLIENT_CPU,
        h1=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short measurements (smoke run)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--skip", default="", help="comma-separated phases to skip (1-10)")
    args = parser.parse_args()
    skip = set(args.skip.split(",")) if args.skip else set()
    ms = 2000 if args.quick else 4000
    secs = 3.0 if args.quick else 6.0
    repeats = 1 if args.quick else args.repeats
    from luminary.testing.models import deepsets_tagger, mlp

    results: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_before": os.getloadavg()[0],
    }
    print(f"# serving benchmark — {results['machine']} — load {results['load_before']:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "models"
        mlp(repo / "mlp" / "1" / "model.onnx")
        (repo / "mlp" / "config.pbtxt").write_text(
            "max_batch_size: 1024\ndynamic_batching { max_queue_delay_microseconds: 100 }\n"
        )
        deepsets_tagger(repo / "tagger" / "1" / "model.onnx")
        (repo / "tagger" / "config.pbtxt").write_text("max_batch_size: 256\ndynamic_batching { }\n")
        grpc_payload = Path(tmp) / "infer.grpc"
        grpc_payload.write_bytes(grpc_frame(kserve_infer_request("mlp", "x", (1, 16))))
        body, json_size = http_body("x", (1, 16))
        http_payload = Path(tmp) / "infer.http"
        http_payload.write_bytes(body)

        with server(repo) as ports:
            if "1" not in skip:
                table = {}
                for protocol in ("grpc", "http"):
                    for c in (1, 8, 32, 128):
                        port = ports[protocol]
                        r = median_of(
                            lambda p=port, pr=protocol, c=c: pa("mlp", p, pr, c, ms), repeats
                        )
                        table[f"{protocol} c={c}"] = r
                        print(
                            f"1. mlp {protocol:4} c={c:<3} {r['events_per_s']:>9,.0f} ev/s  "
                            f"p50 {r['p50_ms']:.2f}  p90 {r['p90_ms']:.2f}  "
                            f"p99 {r['p99_ms']:.2f} ms",
                            flush=True,
                        )
                for c in (8, 32):

                    def streamed(c: int = c) -> dict[str, float]:
                        return pa("mlp", ports["grpc"], "grpc", c, ms, streaming=True)

                    r = median_of(streamed, repeats)
                    table[f"grpc-stream c={c}"] = r
                    print(
                        f"1. mlp grpc streaming c={c:<3} {r['events_per_s']:>9,.0f} ev/s  "
                        f"p50 {r['p50_ms']:.2f}  p99 {r['p99_ms']:.2f} ms",
                        flush=True,
                    )
                results["mlp_batch1"] = table
            if "2" not in skip:
                lum_g = median_of(lambda: h2_grpc(ports["grpc"], grpc_payload, secs), repeats)
                lum_h = median_of(
                    lambda: h2_http(
                        ports["http"], "/v2/models/mlp/infer", http_payload, json_size, secs
                    ),
                    repeats,
                )
                results["luminary_h2load"] = {"grpc": lum_g, "http": lum_h}
            if "3" not in skip:
                big = {}
                for protocol in ("grpc", "http"):
                    r = median_of(
                        lambda pr=protocol: pa("mlp", ports[pr], pr, 8, ms, batch=256), repeats
                    )
                    big[protocol] = r
                    print(f"3. mlp 256-event requests {protocol}: {r['events_per_s']:,.0f} ev/s")
                results["mlp_batch256"] = big
            if "4" not in skip:
                tagger = repo / "tagger" / "1" / "model.onnx"
                results["tagger"] = {}
                for protocol in ("grpc", "http"):
                    before = stats(ports["http"], "tagger")

                    def tag(pr: str = protocol) -> dict[str, float]:
                        return pa("tagger", ports[pr], pr, 32, ms)

                    r = median_of(tag, repeats)
                    after = stats(ports["http"], "tagger")
                    mean_batch = (after["events"] - before["events"]) / max(
                        1, after["executions"] - before["executions"]
                    )
                    formed = max(1, round(mean_batch))
                    ceiling = in_process(tagger, TAGGER_SHAPE, formed, secs)
                    results["tagger"][protocol] = {
                        "served": r,
                        "mean_batch": mean_batch,
                        "in_process_at_formed_batch": ceiling,
                        "ratio": r["events_per_s"] / ceiling,
                    }
                    print(
                        f"4. tagger {protocol} c=32: {r['events_per_s']:,.0f} ev/s (batch "
                        f"{mean_batch:.1f}, p99 {r['p99_ms']:.1f} ms); in-process at batch "
                        f"{formed}: {ceiling:,.0f} → {r['events_per_s'] / ceiling:.0%}",
                        flush=True,
                    )
            server_rss = rss_mb(ports["pid"])
            results["energy"] = server_energy(ports["metrics"])
            print(f"energy (the server's own, since it started): {results['energy']}")
        if "5" not in skip:
            results["direct"] = {
                "mlp": in_process(repo / "mlp" / "1" / "model.onnx", (16,), 1, secs),
                "tagger": in_process(repo / "tagger" / "1" / "model.onnx", TAGGER_SHAPE, 1, secs),
                "mlp_batch_256": in_process(repo / "mlp" / "1" / "model.onnx", (16,), 256, secs),
            }
            print(f"5. direct per event: {results['direct']}")
        if "2" not in skip:
            floors = {}
            proc, port = echo("grpc-sync")
            try:
                floors["grpc_sync"] = median_of(lambda: h2_grpc(port, grpc_payload, secs), repeats)
            finally:
                proc.terminate()
                proc.wait()
            proc, port = echo("asgi")
            try:
                floors["asgi"] = median_of(
                    lambda: h2_http(port, "/v2/models/mlp/infer", http_payload, json_size, secs),
                    repeats,
                )
            finally:
                proc.terminate()
                proc.wait()
            results["floors"] = floors
            lum = results["luminary_h2load"]
            assert isinstance(lum, dict)
            for name, floor, ours in (
                ("gRPC", floors["grpc_sync"], lum["grpc"]),
                ("HTTP", floors["asgi"], lum["http"]),
            ):
                print(
                    f"2. {name}: echo {floor['requests_per_s']:,.0f} req/s, Luminary "
                    f"{ours['requests_per_s']:,.0f} req/s (p99 {ours.get('p99_ms', 0):.1f} ms) "
                    f"→ {ours['requests_per_s'] / floor['requests_per_s']:.0%} of the floor"
                )
        if "6" not in skip:
            with server(repo, "--max-inflight", "32") as ports:
                cap = h2_http(ports["http"], "/v2/models/mlp/infer", http_payload, json_size, secs)
                over = h2_http(
                    ports["http"], "/v2/models/mlp/infer", http_payload, json_size, secs, 128
                )
            results["overload"] = {"capacity_c32": cap, "offered_c128": over}
            print(f"6. overload: at capacity {cap}; at 4x offered {over}")
        if "7" not in skip:
            with server(repo, "--workers", "2", cpu=None) as ports:
                time.sleep(3)
                w = {
                    pr: median_of(lambda pr=pr: pa("mlp", ports[pr], pr, 32, ms), repeats)
                    for pr in ("grpc", "http")
                }
            results["workers2"] = w
            print(f"7. --workers 2: {w}")
        if "8" not in skip:
            results["memory"] = memory(repo, secs)
            print(f"8. memory: {results['memory']}")
        if "9" not in skip:
            try:
                results["triton_pytriton"] = pytriton_anchor(
                    repo / "mlp" / "1" / "model.onnx", Path(tmp), ms, repeats
                )
            except RuntimeError as exc:
                print(f"9. PyTriton anchor skipped: {exc}", flush=True)
                results["triton_pytriton"] = {"skipped": str(exc)}
        results["server_rss_mb"] = server_rss
        if "10" not in skip:
            results["grpc_handler_cost"] = grpc_handler_cost(repo, grpc_payload, secs, repeats)
    results["load_after"] = os.getloadavg()[0]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


def server_energy(port: int) -> dict[str, object]:
    """What the server says it used, per device and per event of each model, with sources."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[str, object] = {}
    for line in text.splitlines():
        if line.startswith(
            ("luminary_energy_joules_total{", "luminary_inference_joules_per_event{")
        ):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def grpc_handler_cost(
    repo: Path, payload: Path, seconds: float, repeats: int
) -> dict[str, dict[str, float]]:
    """h2load against grpcio servers doing more and more of Luminary's work per request."""
    import psutil

    out = {}
    for mode in ("raw", "parse", "check", "spin20", "spin40", "full"):
        port = free_port()
        cmd = ["taskset", "-c", str(SERVER_CPU), PY, str(ROOT / "benchmarks" / "_grpc_handler.py")]
        cmd += [mode, "--port", str(port), "--repository", str(repo)]
        proc = subprocess.Popen(cmd)
        try:
            deadline = time.time() + 30
            while time.time() < deadline:
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.2)
            cpu0 = psutil.Process(proc.pid).cpu_times()
            r = median_of(lambda p=port: h2_grpc(p, payload, seconds), repeats)
            cpu1 = psutil.Process(proc.pid).cpu_times()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        served = r["requests_per_s"] * (seconds + 1) * repeats  # h2load warms up for 1 s
        r["user_us_per_request"] = (cpu1.user - cpu0.user) / served * 1e6
        out[mode] = r
        print(
            f"10. grpc handler {mode:6} {r['requests_per_s']:>7,.0f} req/s  "
            f"{r['user_us_per_request']:.0f} µs user CPU per request",
            flush=True,
        )
    return out


def memory(repo: Path, seconds: float) -> dict[str, float]:
    """16 processes with the tagger in-process vs one server and 16 thin gRPC clients."""
    model = repo / "tagger" / "1" / "model.onnx"
    local = (
        "import sys,time,numpy as np,onnxruntime as ort;so=ort.SessionOptions();"
        "so.intra_op_num_threads=1;"
        f"s=ort.InferenceSession({str(model)!r},so,providers=['CPUExecutionProvider']);"
        f"x=np.random.rand(1,*{TAGGER_SHAPE!r}).astype('f4');s.run(None,{{'constituents':x}});"
        "print('ok',flush=True);time.sleep(60)"
    )
    procs = [subprocess.Popen([PY, "-c", local], stdout=subprocess.PIPE) for _ in range(16)]
    for p in procs:
        assert p.stdout is not None
        p.stdout.readline()
    in_proc = sum(rss_mb(p.pid) for p in procs)
    for p in procs:
        p.kill()
        p.wait()
    with server(repo, cpu=None) as ports:
        client = (
            "import time,numpy as np,tritonclient.grpc as g;"
            f"c=g.InferenceServerClient('127.0.0.1:{ports['grpc']}');"
            f"x=np.random.rand(1,*{TAGGER_SHAPE!r}).astype('f4');i=g.InferInput('constituents',"
            "list(x.shape),'FP32');i.set_data_from_numpy(x);c.infer('tagger',[i]);"
            "print('ok',flush=True);time.sleep(60)"
        )
        procs = [subprocess.Popen([PY, "-c", client], stdout=subprocess.PIPE) for _ in range(16)]
        for p in procs:
            assert p.stdout is not None
            p.stdout.readline()
        clients = sum(rss_mb(p.pid) for p in procs)
        served = rss_mb(ports["pid"])
        for p in procs:
            p.kill()
            p.wait()
    return {
        "in_process_16_mb": in_proc,
        "server_mb": served,
        "clients_16_mb": clients,
        "served_total_mb": served + clients,
    }


def pytriton_anchor(
    model: Path, tmp: Path, ms: int, repeats: int
) -> dict[str, dict[str, float | str]]:
    """Phase 9: the Triton anchor, Triton 2.51 serving the MLP through its Python backend.

    ``_pytriton_serve.py`` runs under the venv from ``_tools.pytriton_python()`` (PyTriton
    ``@batch``, ONNX Runtime one thread, dynamic batching 100 µs), pinned to CPU 0 with its
    whole tree (tritonserver and the Python backend stubs inherit the affinity), in a session
    of its own so that its process group can be killed when SIGTERM is not enough. Raises
    RuntimeError when PyTriton is unavailable or the server does not come up; a measurement
    perf_analyzer cannot make is recorded as ``{"error": ...}``.
    """
    from contextlib import suppress

    from _tools import pytriton_python

    python = pytriton_python()
    if python is None:
        raise RuntimeError("nvidia-pytriton is unavailable (reason above)")
    ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    cmd = ["taskset", "-c", str(SERVER_CPU), str(python)]
    cmd += [str(ROOT / "benchmarks" / "_pytriton_serve.py"), str(model), "--name", "mlp"]
    for name, port in ports.items():
        cmd += [f"--{name}-port", str(port)]
    log_path = tmp / "pytriton.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        urls = [f"http://127.0.0.1:{ports['http']}/v2/{p}" for p in ("health", "models/mlp")]
        deadline = time.time() + 180
        while urls:
            if proc.poll() is not None or time.time() > deadline:
                tail = log_path.read_text()[-1500:]
                raise RuntimeError(f"PyTriton server did not become ready:\n{tail}")
            try:
                with urllib.request.urlopen(f"{urls[0]}/ready", timeout=1) as r:
                    if r.status == 200:
                        urls.pop(0)
            except OSError:
                time.sleep(0.5)
        table: dict[str, dict[str, float | str]] = {}
        for protocol in ("grpc", "http"):
            for c in (1, 8, 32):
                port = ports[protocol]
                try:  # on a busy machine perf_analyzer may find no stable window: go on
                    r = median_of(lambda p=port, pr=protocol, c=c: pa("mlp", p, pr, c, ms), repeats)
                except RuntimeError as exc:
                    why = str(exc).strip().splitlines()[-1]
                    table[f"{protocol} c={c}"] = {"error": why}
                    print(f"9. pytriton mlp {protocol:4} c={c:<3} failed: {why}", flush=True)
                    continue
                table[f"{protocol} c={c}"] = r
                print(
                    f"9. pytriton mlp {protocol:4} c={c:<3} {r['events_per_s']:>9,.0f} ev/s  "
                    f"p50 {r['p50_ms']:.2f}  p90 {r['p90_ms']:.2f}  p99 {r['p99_ms']:.2f} ms",
                    flush=True,
                )
        return table
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with suppress(ProcessLookupError):  # whatever of the tree outlived the parent
            os.killpg(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    from _energy import run_measured

    run_measured(main)
