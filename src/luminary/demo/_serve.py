"""The demo's last step: serve the production model and drive it as CMSSW's SONIC would.

The registered model is served by Luminary's inference server; client threads, using the
official ``tritonclient`` gRPC package, each send one request per collision event carrying
that event's jets, as a framework module would. The same jets run in-process, one jet per
call ("direct inference"), for comparison, and the server's answers are checked against it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from luminary.demo._jets import JetSample


@dataclass(frozen=True)
class ServeResult:
    served_jets_per_s: float
    served_p50_ms: float
    served_p99_ms: float
    mean_batch: float
    direct_jets_per_s: float
    max_diff: float
    requests: int
    failed: int
    served_joules_per_jet: float
    direct_joules_per_jet: float
    energy_source: str  # how the joules were had: "rapl", "estimate"…
    run_id: str  # the serving run that records these figures


def _direct(path: Path, x: np.ndarray, mask: np.ndarray, seconds: float) -> tuple[float, float]:
    """Jets/s and joules per jet of in-process inference, one jet per call."""
    import onnxruntime as ort

    from luminary.energy import measure

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    n = 0
    with measure() as meter:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            i = n % len(x)
            feeds = {"constituents": x[i : i + 1], "mask": mask[i : i + 1]}
            session.run(["probabilities"], feeds)
            n += 1
        rate = n / (time.perf_counter() - t0)
    return rate, meter.report.total_joules / max(1, n)


def serve_demo(
    model_ref: str,
    sample: JetSample,
    con: Console,
    *,
    project: str = "default",
    clients: int = 8,
    jets_per_event: int = 8,
    seconds: float = 2.0,
) -> ServeResult | None:
    """Serve ``model_ref`` on free loopback ports, load it over gRPC, compare with direct."""
    try:
        import tritonclient.grpc as triton
    except ImportError:
        con.print(
            "[yellow]skipping the serving step: the demo drives the server with tritonclient; "
            "install it with: pip install 'luminary[demo]'[/]"
        )
        return None
    import luminary as lm
    from luminary.energy import measure
    from luminary.registry import get_model
    from luminary.serving import InferenceServer, ModelRepository, RegistrySource, ServeOptions

    name = model_ref.split("@", 1)[0]
    x = np.ascontiguousarray(sample.constituents[: 64 * jets_per_event])
    mask = np.ascontiguousarray(sample.mask[: len(x)].astype(np.float32))
    events = len(x) // jets_per_event
    repo = ModelRepository()
    with con.status(f"serving {model_ref} and sending events over gRPC with tritonclient…"):
        repo.add(RegistrySource(model_ref))
        server = InferenceServer(repo, ServeOptions(http_port=0, grpc_port=0, metrics_port=0))
        server.start()
        try:
            url = f"127.0.0.1:{server.grpc_port}"
            latencies: list[float] = []
            failures = [0]
            outputs: dict[int, np.ndarray] = {}
            lock = threading.Lock()
            stop = time.perf_counter() + seconds

            def client(k: int) -> None:
                with triton.InferenceServerClient(url) as c:
                    i = k
                    mine = []
                    while time.perf_counter() < stop:
                        e = i % events
                        sl = slice(e * jets_per_event, (e + 1) * jets_per_event)
                        a = triton.InferInput("constituents", list(x[sl].shape), "FP32")
                        a.set_data_from_numpy(x[sl])
                        b = triton.InferInput("mask", list(mask[sl].shape), "FP32")
                        b.set_data_from_numpy(mask[sl])
                        t = time.perf_counter()
                        try:
                            r = c.infer(name, [a, b])
                        except triton.InferenceServerException:
                            with lock:
                                failures[0] += 1
                            continue
                        mine.append(time.perf_counter() - t)
                        if e not in outputs:
                            outputs[e] = r.as_numpy("probabilities")
                        i += clients
                with lock:
                    latencies.extend(mine)

            threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
            with measure() as meter:  # the server and its clients share this process
                t0 = time.perf_counter()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                wall = time.perf_counter() - t0
            stats = repo.get(name).stats.to_dict(name, "")
        finally:
            server.stop()  # also closes the repository
        local = get_model(model_ref)
        path = local.path
        direct, direct_j = _direct(path, x, mask, min(seconds, 1.0))
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    max_diff = 0.0
    for e, probs in outputs.items():
        sl = slice(e * jets_per_event, (e + 1) * jets_per_event)
        (want,) = session.run(["probabilities"], {"constituents": x[sl], "mask": mask[sl]})
        max_diff = max(max_diff, float(np.abs(probs - want).max()))
    lat = np.array(latencies) * 1e3 if latencies else np.zeros(1)
    served = len(latencies) * jets_per_event / wall
    executions = max(1, stats["execution_count"])
    energy = meter.report
    served_j = energy.total_joules / max(1, len(latencies) * jets_per_event)
    cpu = energy.device("cpu")
    source = cpu.source if cpu is not None else "none"
    with lm.start_run(
        project=project,
        name=f"serve-{name}",
        tags={"kind": "serving", "model": local.version.ref, "protocol": "grpc"},
        capture_env=False,
        energy=False,  # the figures below are the load's own, measured around it
    ) as run:
        run.log(
            {
                "serving/joules_per_event": served_j,
                "serving/events_per_s": served,
                "serving/direct_joules_per_event": direct_j,
                "serving/direct_events_per_s": direct,
                **energy.to_metrics(),
            }
        )
        run.set_tags(energy.to_tags())
    result = ServeResult(
        served_jets_per_s=served,
        served_p50_ms=float(np.percentile(lat, 50)),
        served_p99_ms=float(np.percentile(lat, 99)),
        mean_batch=stats["inference_count"] / executions,
        direct_jets_per_s=direct,
        max_diff=max_diff,
        requests=len(latencies),
        failed=failures[0],
        served_joules_per_jet=served_j,
        direct_joules_per_jet=direct_j,
        energy_source=source,
        run_id=run.id,
    )
    table = Table(title=f"serving {model_ref}", title_justify="left")
    mark = "~" if energy.any_estimated else ""
    for col in ("how", "jets/s", "p50 ms", "p99 ms", "jets per model run", "mJ per jet"):
        table.add_column(col, justify="left" if col == "how" else "right")
    table.add_row(
        f"server, gRPC (tritonclient), {clients} clients, {jets_per_event} jets per request",
        f"{result.served_jets_per_s:,.0f}",
        f"{result.served_p50_ms:.2f}",
        f"{result.served_p99_ms:.2f}",
        f"{result.mean_batch:.1f}",
        f"{mark}{served_j * 1e3:.2f}",
    )
    table.add_row(
        "direct, in-process ONNX Runtime, one jet per call",
        f"{result.direct_jets_per_s:,.0f}",
        "",
        "",
        "1",
        f"{mark}{direct_j * 1e3:.2f}",
    )
    con.print(table)
    con.print(
        f"[green]✓[/] {result.requests:,} requests answered, {result.failed} failed; answers "
        f"agree with in-process ONNX Runtime to {result.max_diff:.1e}. On this machine the "
        "clients and the server share the CPU; the server pays off when many client processes "
        "share one copy of the model or a GPU (`luminary bench serve` measures it)."
    )
    how = "; ".join(f"{d.device}: {d.source} — {d.detail}" for d in energy.devices)
    con.print(
        f"  energy per jet ({'~ estimated' if energy.any_estimated else 'measured'}): {how}; "
        f"recorded in serving run {run.id}"
    )
    return result
