"""Prometheus metrics with Triton's names, served on the metrics port.

Counters are read from each model version's statistics at scrape time, so the request path
pays nothing for them. Triton exposes counters without the ``_total`` suffix
(``nv_inference_request_success``); dashboards written for Triton rely on those names, so the
``nv_*`` families are rendered here in Prometheus' text format exactly so, and the process
metrics (CPU, memory, open files) come from prometheus-client's own collectors after them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from luminary.errors import InvalidArgumentError
from luminary.serving._repository import ModelRepository

if TYPE_CHECKING:
    from luminary.energy import EnergyReport

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)

_COUNTERS = (
    ("nv_inference_request_success", "Number of successful inference requests", "success", "count"),
    ("nv_inference_request_failure", "Number of failed inference requests", "fail", "count"),
    ("nv_inference_request_duration_us", "Cumulative request duration (µs)", "success", "ns"),
    ("nv_inference_queue_duration_us", "Cumulative time requests spend queued (µs)", "queue", "ns"),
    (
        "nv_inference_compute_input_duration_us",
        "Cumulative input preparation (batch assembly) time (µs)",
        "compute_input",
        "ns",
    ),
    (
        "nv_inference_compute_infer_duration_us",
        "Cumulative model execution time (µs)",
        "compute_infer",
        "ns",
    ),
    (
        "nv_inference_compute_output_duration_us",
        "Cumulative output processing time (µs)",
        "compute_output",
        "ns",
    ),
)


def _labels(values: dict[str, str]) -> str:
    inner = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in values.items()
    )
    return "{" + inner + "}"


def _family(name: str, help_text: str, kind: str, samples: Iterable[str]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]


def render(repository: ModelRepository, energy: EnergyReport | None = None) -> str:
    """The ``nv_*`` and ``luminary_*`` families for every loaded model version.

    With ``energy`` (the server process's use since it started), also the joules per device
    with their source, and per model version the joules attributed to it (the process's
    energy shared by each version's model-execution time) and joules per event.
    """
    rows: list[tuple[dict[str, str], dict[str, Any], Any]] = []
    for name in repository.names():
        entry = repository.entry(name)
        for version, loaded in sorted(entry.versions.items(), key=lambda kv: int(kv[0])):
            snap = loaded.stats.to_dict(name, version)
            rows.append(({"model": name, "version": version}, snap, loaded))
    lines: list[str] = []
    for metric, help_text, key, field in _COUNTERS:
        samples = []
        for labels, snap, _ in rows:
            value = snap["inference_stats"][key][field]
            if field == "ns":
                value //= 1000
            samples.append(f"{metric}{_labels(labels)} {value}")
        lines += _family(metric, help_text, "counter", samples)
    lines += _family(
        "nv_inference_count",
        "Number of inferences performed (events; a request of 8 events counts 8)",
        "counter",
        (f"nv_inference_count{_labels(lb)} {s['inference_count']}" for lb, s, _ in rows),
    )
    lines += _family(
        "nv_inference_exec_count",
        "Number of model executions (batches)",
        "counter",
        (f"nv_inference_exec_count{_labels(lb)} {s['execution_count']}" for lb, s, _ in rows),
    )
    lines += _family(
        "nv_inference_pending_request_count",
        "Requests waiting in the model's queue",
        "gauge",
        (
            f"nv_inference_pending_request_count{_labels(lb)} {m.batcher.queued}"
            for lb, _, m in rows
        ),
    )
    hist = []
    for labels, snap, _ in rows:
        sizes = {b["batch_size"]: b["compute_infer"]["count"] for b in snap["batch_stats"]}
        total_sum = sum(size * count for size, count in sizes.items())
        cumulative = 0
        for bound in BATCH_BUCKETS:
            cumulative = sum(c for s, c in sizes.items() if s <= bound)
            hist.append(
                f"luminary_inference_batch_size_bucket{_labels({**labels, 'le': str(bound)})} "
                f"{cumulative}"
            )
        count = sum(sizes.values())
        hist.append(
            f"luminary_inference_batch_size_bucket{_labels({**labels, 'le': '+Inf'})} {count}"
        )
        hist.append(f"luminary_inference_batch_size_count{_labels(labels)} {count}")
        hist.append(f"luminary_inference_batch_size_sum{_labels(labels)} {total_sum}")
    lines += _family(
        "luminary_inference_batch_size",
        "Events per executed batch, as the dynamic batcher formed them",
        "histogram",
        hist,
    )
    ready = []
    for name in repository.names():
        entry = repository.entry(name)
        ready.append(f"luminary_model_ready{_labels({'model': name})} {int(bool(entry.versions))}")
    lines += _family("luminary_model_ready", "1 when the model serves requests", "gauge", ready)
    if energy is not None:
        lines += _energy_lines(energy, rows)
    return "\n".join(lines) + "\n"


def _energy_lines(
    energy: EnergyReport, rows: list[tuple[dict[str, str], dict[str, Any], Any]]
) -> list[str]:
    lines = _family(
        "luminary_energy_joules_total",
        "Energy the server process used since it started, per device (source: how measured)",
        "counter",
        (
            f"luminary_energy_joules_total{_labels({'device': d.device, 'source': d.source})} "
            f"{d.joules:.6g}"
            for d in energy.devices
        ),
    )
    source = "estimate" if energy.any_estimated else "measured"
    busy = {id(snap): snap["inference_stats"]["compute_infer"]["ns"] for _, snap, _ in rows}
    total_busy = sum(busy.values())
    shared, per_event = [], []
    for labels, snap, _ in rows:
        share = busy[id(snap)] / total_busy if total_busy else 0.0
        joules = energy.total_joules * share
        tagged = {**labels, "source": source}
        shared.append(f"luminary_inference_energy_joules_total{_labels(tagged)} {joules:.6g}")
        if snap["inference_count"]:
            value = joules / snap["inference_count"]
            per_event.append(f"luminary_inference_joules_per_event{_labels(tagged)} {value:.6g}")
    lines += _family(
        "luminary_inference_energy_joules_total",
        "Server energy attributed to a model version by its share of model-execution time",
        "counter",
        shared,
    )
    lines += _family(
        "luminary_inference_joules_per_event",
        "Attributed energy per event served (source estimate: no counter was readable)",
        "gauge",
        per_event,
    )
    return lines


def _process_metrics() -> bytes:
    from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest

    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    return generate_latest(registry)


def handler_for(produce: Callable[[], bytes]) -> type[BaseHTTPRequestHandler]:
    """An ``http.server`` handler answering ``GET /metrics`` with ``produce()``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "metrics are at /metrics")
                return
            body = produce()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


class MetricsServer:
    """``GET /metrics`` on its own port, in a background thread."""

    def __init__(
        self,
        repository: ModelRepository,
        host: str,
        port: int,
        energy: Callable[[], EnergyReport | None] = lambda: None,
    ) -> None:
        handler = handler_for(lambda: render(repository, energy()).encode() + _process_metrics())
        try:
            self._httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            msg = (
                f"cannot listen for metrics on {host}:{port}: {exc.strerror}; choose another "
                "port (--metrics-port)"
            )
            raise InvalidArgumentError(msg) from exc
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="lm-metrics", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
