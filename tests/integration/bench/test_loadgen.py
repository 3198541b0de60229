"""The load generator (``luminary bench serve``) against an in-process inference server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from luminary.bench import LoadResult, probe, run_direct, run_load
from luminary.cli import app
from luminary.errors import BackendUnavailableError, NotFoundError
from luminary.serving import InferenceServer, ModelRepository, ServeOptions
from luminary.testing.models import mlp

SHORT = {"duration": 0.6, "warmup": 0.2}


@pytest.fixture(scope="module")
def mlp_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mlp(tmp_path_factory.mktemp("loadgen") / "models" / "mlp" / "1" / "model.onnx")


@pytest.fixture(scope="module")
def bench_server(mlp_file: Path) -> Iterator[InferenceServer]:
    repo = ModelRepository()
    repo.add_folder(mlp_file.parents[2])
    server = InferenceServer(repo, ServeOptions(http_port=0, grpc_port=0, metrics_port=0))
    server.start()
    yield server
    server.stop(grace=10)


def url(server: InferenceServer, protocol: str) -> str:
    port = server.grpc_port if protocol == "grpc" else server.http_port
    return f"127.0.0.1:{port}"


def assert_sane(result: LoadResult) -> None:
    assert result.errors == {}
    assert result.requests > 0
    assert result.events_per_s == pytest.approx(result.requests_per_s * result.batch_size)
    assert result.p50_ms is not None
    assert result.p90_ms is not None
    assert result.p99_ms is not None
    assert 0 < result.p50_ms <= result.p90_ms <= result.p99_ms


@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize("concurrency", [1, 8])
def test_closed_loop_load_measures_events_latency_and_server_batches(
    bench_server: InferenceServer, protocol: str, concurrency: int
) -> None:
    result = run_load(url(bench_server, protocol), "mlp", protocol, concurrency, **SHORT)
    assert (result.mode, result.protocol, result.concurrency) == ("server", protocol, concurrency)
    assert_sane(result)
    assert result.mean_batch is not None
    assert result.mean_batch >= 1
    assert sum(result.batch_sizes.values()) > 0
    if concurrency == 1:
        assert result.mean_batch == 1  # one request in flight: nothing to merge


def test_batch_size_counts_events_per_request(bench_server: InferenceServer) -> None:
    result = run_load(url(bench_server, "http"), "mlp", "http", 2, batch_size=4, **SHORT)
    assert_sane(result)
    assert result.events_per_s == pytest.approx(4 * result.requests_per_s)
    assert result.mean_batch is not None
    assert result.mean_batch >= 4
    assert min(result.batch_sizes) >= 4


def test_processes_share_the_concurrency_and_merge_results(
    bench_server: InferenceServer,
) -> None:
    result = run_load(url(bench_server, "grpc"), "mlp", "grpc", 4, processes=2, **SHORT)
    assert result.processes == 2
    assert_sane(result)


def test_direct_inference_runs_the_file_in_process(mlp_file: Path) -> None:
    result = run_direct(mlp_file, duration=0.3, warmup=0.1)
    assert (result.mode, result.protocol, result.model) == ("direct", "onnxruntime", "model")
    assert_sane(result)
    assert result.mean_batch == 1


def test_direct_inference_fetches_a_registry_reference(mlp_file: Path) -> None:
    import luminary as lm

    lm.register_model("bench-mlp", mlp_file, alias="production")
    result = run_direct("bench-mlp@production", duration=0.2, warmup=0)
    assert result.requests > 0
    assert result.errors == {}


def test_probe_reads_inputs_from_the_server_metadata(bench_server: InferenceServer) -> None:
    for protocol in ("grpc", "http"):
        endpoint, info = probe(url(bench_server, protocol), "mlp", protocol)
        assert endpoint.protocol == protocol
        assert info.batched
        assert [(t.name, t.datatype, t.dims) for t in info.inputs] == [("x", "FP32", (16,))]


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_unknown_model_names_the_server_and_the_nearest_model(
    bench_server: InferenceServer, protocol: str
) -> None:
    address = url(bench_server, protocol)
    with pytest.raises(NotFoundError) as caught:
        run_load(address, "mlpp", protocol, 1, **SHORT)
    message = str(caught.value)
    assert address in message
    assert "did you mean 'mlp'" in message


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_no_server_says_how_to_start_one(protocol: str) -> None:
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(BackendUnavailableError) as caught:
        run_load(address, "mlp", protocol, 1, **SHORT)
    assert address in str(caught.value)
    assert "luminary serve" in str(caught.value)


def test_cli_json_has_a_row_per_level_and_the_direct_baseline(
    bench_server: InferenceServer, mlp_file: Path
) -> None:
    args = ["bench", "serve", "mlp", "--url", url(bench_server, "http"), "--protocol", "http"]
    args += ["-c", "1,4", "-d", "0.4", "--warmup", "0.1", "--direct", str(mlp_file)]
    result = CliRunner().invoke(app, [*args, "-o", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["mode"], r["concurrency"]) for r in rows] == [
        ("direct", 1),
        ("server", 1),
        ("server", 4),
    ]
    assert rows[0]["vs_direct"] == 1
    assert all(r["events_per_s"] > 0 and r["error_count"] == 0 for r in rows)
    assert rows[1]["vs_direct"] == pytest.approx(rows[1]["events_per_s"] / rows[0]["events_per_s"])


def test_cli_table_shows_the_direct_row_alone_with_url_none(mlp_file: Path) -> None:
    args = ["bench", "serve", "mlp", "--url", "none", "--direct", str(mlp_file)]
    result = CliRunner().invoke(app, [*args, "-d", "0.2", "--warmup", "0"])
    assert result.exit_code == 0, result.output
    assert "onnxruntime" in result.stdout
    assert "p99 ms" in result.stdout
    assert "server" not in result.stdout


def test_cli_reports_a_missing_server_on_stderr_with_exit_status_1(mlp_file: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    args = ["bench", "serve", "mlp", "--url", address, "--direct", str(mlp_file), "-d", "0.2"]
    proc = subprocess.run(
        [sys.executable, "-m", "luminary.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert f"cannot reach the inference server at grpc://{address}" in proc.stderr


def test_joules_per_event_come_from_the_servers_metrics_and_the_direct_run(
    bench_server: InferenceServer, mlp_file: Path
) -> None:
    metrics = f"http://127.0.0.1:{bench_server.metrics_port}/metrics"
    served = run_load(url(bench_server, "http"), "mlp", "http", 4, metrics_url=metrics, **SHORT)
    assert served.joules_per_event is not None
    assert served.joules_per_event > 0
    assert served.energy_source in ("measured", "estimate")
    direct = run_direct(mlp_file, duration=0.3, warmup=0.1)
    assert direct.joules_per_event is not None
    assert direct.joules_per_event > 0
    # Nothing listens on this metrics port: no energy, and no error either.
    blind = run_load(
        url(bench_server, "http"),
        "mlp",
        "http",
        1,
        metrics_url="http://127.0.0.1:1/metrics",
        **SHORT,
    )
    assert blind.joules_per_event is None
    assert blind.errors == {}
