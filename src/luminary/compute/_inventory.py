"""What this machine offers: CPUs, memory, GPUs, readable energy meters, the configured store and
the Luminary servers running here, each with a short recommendation.

:func:`collect` does the I/O (psutil, NVML, HTTP health checks) and returns a frozen
:class:`Snapshot`; :func:`rows` and :func:`snapshot_dict` turn a snapshot into table rows and
JSON without any I/O, so tests can feed them a fabricated snapshot.
"""

from __future__ import annotations

import importlib
import os
import platform
import re
import shutil
import socket
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from luminary.errors import LuminaryError

__all__ = [
    "CpuInfo",
    "EnergySource",
    "GpuInfo",
    "GpuReport",
    "MemoryInfo",
    "ResourceRow",
    "ServerProcess",
    "Snapshot",
    "StoreInfo",
    "collect",
    "parse_server_cmdline",
    "rows",
    "snapshot_dict",
]

GiB = 1024**3


@dataclass(frozen=True)
class CpuInfo:
    model: str
    logical: int
    physical: int | None
    load_avg: tuple[float, float, float] | None  # 1, 5, 15 minutes
    freq_mhz: float | None
    freq_max_mhz: float | None


@dataclass(frozen=True)
class MemoryInfo:
    total_bytes: int
    available_bytes: int


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    utilization_percent: float | None
    power_w: float | None
    power_limit_w: float | None
    mig: Literal["enabled", "disabled"] | None  # None: the GPU has no MIG


@dataclass(frozen=True)
class GpuReport:
    gpus: tuple[GpuInfo, ...] = ()
    driver: str | None = None
    note: str = ""  # why there are none, when there are none


@dataclass(frozen=True)
class EnergySource:
    name: str  # rapl | nvml | estimate
    device: str
    readable: bool
    reason: str = ""
    fix: str = ""


@dataclass(frozen=True)
class StoreInfo:
    mode: Literal["embedded", "server"]
    location: str  # the server URI, or the database URL (password hidden)
    blobs: str | None
    answers: bool | None  # None: nothing to ask (embedded)
    detail: str


@dataclass(frozen=True)
class ServerProcess:
    pid: int
    kind: Literal["inference", "store"]
    host: str
    http_port: int | None
    grpc_port: int | None
    listening: tuple[int, ...]
    worker: bool
    ready: bool | None  # None: not asked (a worker behind its parent, or no HTTP port)
    detail: str = ""


@dataclass(frozen=True)
class Snapshot:
    host: str
    cpu: CpuInfo
    memory: MemoryInfo
    gpu: GpuReport
    energy: tuple[EnergySource, ...]
    energy_note: str  # why there is no list of sources, when there is none
    store: StoreInfo
    servers: tuple[ServerProcess, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class ResourceRow:
    section: str
    name: str
    value: str
    advice: str = ""


# -- pure: recommendations and rows -------------------------------------------------------------


def _gib(n: int | None) -> str:
    return "?" if n is None else f"{n / GiB:.1f} GiB"


def cpu_advice(cpu: CpuInfo) -> str:
    n = cpu.logical
    if n <= 2:
        text = (
            f"{n} logical CPUs: fine for small models and tests; train larger models on a GPU node"
        )
    elif n <= 16:
        text = (
            f"{n} logical CPUs: light models (about an hour of training), data preparation and "
            "serving small models; a GPU for larger ones"
        )
    else:
        text = f"{n} logical CPUs: room for parallel CPU trials, data preparation and serving"
    if cpu.load_avg is not None and cpu.load_avg[0] > n:
        text += f"; busy now (load {cpu.load_avg[0]:.1f}), so timings taken here will be noisy"
    return text


def memory_advice(mem: MemoryInfo) -> str:
    if mem.available_bytes < 2 * GiB:
        return (
            f"only {_gib(mem.available_bytes)} free: stream data file by file, keep batches small"
        )
    if mem.total_bytes < 16 * GiB:
        return "fits small datasets in memory; read larger ones file by file"
    return (
        f"datasets up to ~{mem.available_bytes / 2 / GiB:.0f} GiB fit in memory with room to train"
    )


def gpu_advice(gpu: GpuInfo) -> str:
    if gpu.mig == "enabled":
        return "MIG on: each MIG slice is its own device; give services and trials one each"
    parts = []
    total = gpu.memory_total_bytes
    if total is not None and total >= 40 * GiB:
        parts.append("large models, GNNs and several served models fit")
    elif total is not None and total >= 12 * GiB:
        parts.append("training and serving of mid-size models")
    else:
        parts.append("small models and inference")
    if gpu.utilization_percent is not None and gpu.utilization_percent >= 50:
        parts.append(f"busy now ({gpu.utilization_percent:.0f} % used)")
    if gpu.mig == "disabled" and total is not None and total >= 40 * GiB:
        parts.append("MIG could split it between services")
    return "; ".join(parts)


def no_gpu_advice(report: GpuReport) -> str:
    return (
        "no GPU: train small models here; send jet taggers, GNNs and tuning studies to a GPU node"
        if not report.gpus
        else ""
    )


def energy_advice(sources: Sequence[EnergySource], note: str) -> str:
    if not sources:
        return f"energy: unknown ({note})" if note else "energy: no meter information"
    measured = [s for s in sources if s.readable and s.name != "estimate"]
    if not measured:
        return (
            "energy: estimated only — no readable counter here, so cost reports mark every "
            "figure ~; each source's fix says how to measure"
        )
    covered = {s.device for s in measured}
    guessed = [s.device for s in sources if s.name == "estimate" and s.device not in covered]
    text = "energy: measured for " + ", ".join(f"{s.device} ({s.name})" for s in measured)
    if guessed:
        text += f"; estimated for {', '.join(guessed)} (marked ~ in reports)"
    return text


def store_advice(store: StoreInfo) -> str:
    if store.mode == "server":
        if store.answers:
            return "team mode: runs and models go to the server"
        return "the server does not answer: start it (`luminary server`) or unset LUMINARY_URI"
    if store.location.startswith("sqlite"):
        return (
            "embedded SQLite: fine for one user; for a team, `luminary server` with PostgreSQL "
            "and LUMINARY_URI on the clients"
        )
    return "embedded, on a shared database: every client needs database access"


def server_advice(proc: ServerProcess) -> str:
    if proc.worker:
        return "a worker sharing its parent's ports"
    if proc.kind == "store":
        url = f"http://{_client_host(proc.host)}:{proc.http_port}"
        return f"clients: LUMINARY_URI={url}" if proc.ready else "not ready; see its log"
    if proc.ready:
        return f"ready: http://{_client_host(proc.host)}:{proc.http_port}/v2 (KServe v2)"
    if proc.ready is None:
        return "HTTP front end off; check it with gRPC ServerReady"
    return "not ready (models still loading, or stuck); see its log"


def rows(snap: Snapshot) -> list[ResourceRow]:
    """One row per resource, with what it suits."""
    cpu, mem = snap.cpu, snap.memory
    physical = f", {cpu.physical} physical" if cpu.physical else ""
    load = (
        f" · load {cpu.load_avg[0]:.2f} {cpu.load_avg[1]:.2f} {cpu.load_avg[2]:.2f}"
        if cpu.load_avg
        else ""
    )
    freq = ""
    if cpu.freq_mhz:
        top = f" (max {cpu.freq_max_mhz:.0f})" if cpu.freq_max_mhz else ""
        freq = f" · {cpu.freq_mhz:.0f} MHz{top}"
    out = [
        ResourceRow(
            "cpu",
            cpu.model or "CPU",
            f"{cpu.logical} logical{physical}{load}{freq}",
            cpu_advice(cpu),
        ),
        ResourceRow(
            "memory",
            "memory",
            f"{_gib(mem.available_bytes)} free of {_gib(mem.total_bytes)}",
            memory_advice(mem),
        ),
    ]
    if snap.gpu.gpus:
        for g in snap.gpu.gpus:
            bits = [f"{_gib(g.memory_used_bytes)} used of {_gib(g.memory_total_bytes)}"]
            if g.utilization_percent is not None:
                bits.append(f"{g.utilization_percent:.0f} % busy")
            if g.power_w is not None:
                limit = f" of {g.power_limit_w:.0f}" if g.power_limit_w else ""
                bits.append(f"{g.power_w:.0f}{limit} W")
            bits.append(f"MIG {g.mig}" if g.mig else "no MIG")
            out.append(
                ResourceRow("gpu", f"gpu{g.index} {g.name}", " · ".join(bits), gpu_advice(g))
            )
    else:
        out.append(ResourceRow("gpu", "GPU", f"none: {snap.gpu.note}", no_gpu_advice(snap.gpu)))
    advice = energy_advice(snap.energy, snap.energy_note)
    if not snap.energy:
        out.append(ResourceRow("energy", "meters", snap.energy_note or "unknown", advice))
    for i, s in enumerate(snap.energy):
        value = "readable" if s.readable else f"not readable: {s.reason}"
        if s.readable and s.reason:
            value += f" ({s.reason})"
        if not s.readable and s.fix:
            value += f" — fix: {s.fix}"
        out.append(ResourceRow("energy", f"{s.name} {s.device}", value, advice if i == 0 else ""))
    st = snap.store
    where = st.location + (f" · blobs {st.blobs}" if st.blobs else "")
    out.append(ResourceRow("store", st.mode, f"{where} · {st.detail}", store_advice(st)))
    if not snap.servers:
        out.append(
            ResourceRow(
                "servers",
                "inference",
                "none running here",
                "`luminary serve NAME@production` starts one",
            )
        )
    for p in snap.servers:
        ports = [
            f"HTTP {p.http_port}" if p.http_port else "",
            f"gRPC {p.grpc_port}" if p.grpc_port else "",
        ]
        listen = f" · listening {', '.join(map(str, p.listening))}" if p.listening else ""
        state = {True: "ready", False: "not ready", None: "not asked"}[p.ready]
        value = f"{' · '.join(x for x in ports if x) or 'no ports'}{listen} · {state}"
        if p.detail:
            value += f" ({p.detail})"
        out.append(ResourceRow("servers", f"{p.kind} pid {p.pid}", value, server_advice(p)))
    return out


def snapshot_dict(snap: Snapshot) -> dict[str, Any]:
    """The snapshot as JSON-ready sections, each with its recommendation."""
    data: dict[str, Any] = {"host": snap.host}
    data["cpu"] = asdict(snap.cpu) | {"advice": cpu_advice(snap.cpu)}
    data["memory"] = asdict(snap.memory) | {"advice": memory_advice(snap.memory)}
    data["gpu"] = {
        "driver": snap.gpu.driver,
        "note": snap.gpu.note,
        "devices": [asdict(g) | {"advice": gpu_advice(g)} for g in snap.gpu.gpus],
        "advice": no_gpu_advice(snap.gpu),
    }
    data["energy"] = {
        "sources": [asdict(s) for s in snap.energy],
        "note": snap.energy_note,
        "advice": energy_advice(snap.energy, snap.energy_note),
    }
    data["store"] = asdict(snap.store) | {"advice": store_advice(snap.store)}
    data["servers"] = [asdict(p) | {"advice": server_advice(p)} for p in snap.servers]
    return data


_LUMINARY_NAMES = {"luminary", "luminary.cli", "luminary.cli.__main__", "luminary.exe"}


def _flag(args: Sequence[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def _port(args: Sequence[str], flag: str, default: int) -> int | None:
    text = _flag(args, flag)
    if text is None:
        return default
    return int(text) if text.isdigit() else None


def parse_server_cmdline(cmdline: Sequence[str]) -> dict[str, Any] | None:
    """``{kind, host, http_port, grpc_port, worker}`` for a ``luminary serve`` (inference) or
    ``luminary server`` (store) command line; None for anything else (``luminary bench serve``
    included). A port of 0 means "any free port": it shows up among the listening ports."""
    for i, token in enumerate(cmdline[:-1]):
        if Path(token).name not in _LUMINARY_NAMES:
            continue
        verb, args = cmdline[i + 1], cmdline[i + 2 :]
        if verb == "serve":
            return {
                "kind": "inference",
                "host": _flag(args, "--host") or "127.0.0.1",
                "http_port": None if "--no-http" in args else _port(args, "--http-port", 8000),
                "grpc_port": None if "--no-grpc" in args else _port(args, "--grpc-port", 8001),
                "worker": _flag(args, "--worker-index") is not None,
            }
        if verb == "server":
            port = _flag(args, "--port") or _flag(args, "-p") or "5000"
            return {
                "kind": "store",
                "host": _flag(args, "--host") or "127.0.0.1",
                "http_port": int(port) if port.isdigit() else None,
                "grpc_port": None,
                "worker": False,
            }
        return None
    return None


def _client_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def mask_url(url: str) -> str:
    """A database URL with its password replaced by ***."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


# -- I/O: collecting a snapshot ---------------------------------------------------------------


def _cpu() -> CpuInfo:
    import psutil

    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    model = model or platform.processor() or platform.machine()
    try:
        freq = psutil.cpu_freq()
    except (OSError, NotImplementedError):
        freq = None
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return CpuInfo(
        model=model,
        logical=psutil.cpu_count(logical=True) or os.cpu_count() or 1,
        physical=psutil.cpu_count(logical=False),
        load_avg=(float(load[0]), float(load[1]), float(load[2])) if load else None,
        freq_mhz=float(freq.current) if freq and freq.current else None,
        freq_max_mhz=float(freq.max) if freq and freq.max else None,
    )


def _memory() -> MemoryInfo:
    import psutil

    vm = psutil.virtual_memory()
    return MemoryInfo(total_bytes=int(vm.total), available_bytes=int(vm.available))


def _gpus() -> GpuReport:
    driver_seen = Path("/proc/driver/nvidia").exists() or shutil.which("nvidia-smi") is not None
    try:
        import pynvml
    except ImportError:
        if driver_seen:
            note = (
                "an NVIDIA driver is here but nvidia-ml-py is not installed: "
                "pip install 'luminary[gpu]'"
            )
        else:
            note = "no NVIDIA driver found (and nvidia-ml-py is not installed)"
        return GpuReport(note=note)
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return GpuReport(note=f"NVML did not start ({exc}): no NVIDIA driver or no GPU visible")

    def ask(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except pynvml.NVMLError:
            return None

    try:
        driver = ask(pynvml.nvmlSystemGetDriverVersion)
        gpus = []
        for i in range(ask(pynvml.nvmlDeviceGetCount) or 0):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = ask(pynvml.nvmlDeviceGetName, h) or "?"
            mem = ask(pynvml.nvmlDeviceGetMemoryInfo, h)
            util = ask(pynvml.nvmlDeviceGetUtilizationRates, h)
            power = ask(pynvml.nvmlDeviceGetPowerUsage, h)
            limit = ask(pynvml.nvmlDeviceGetEnforcedPowerLimit, h)
            mig = ask(pynvml.nvmlDeviceGetMigMode, h)
            gpus.append(
                GpuInfo(
                    index=i,
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    memory_used_bytes=int(mem.used) if mem is not None else None,
                    memory_total_bytes=int(mem.total) if mem is not None else None,
                    utilization_percent=float(util.gpu) if util is not None else None,
                    power_w=power / 1000 if power is not None else None,
                    power_limit_w=limit / 1000 if limit is not None else None,
                    mig=None if mig is None else ("enabled" if mig[0] else "disabled"),
                )
            )
    finally:
        ask(pynvml.nvmlShutdown)
    text = driver.decode() if isinstance(driver, bytes) else driver
    return GpuReport(
        gpus=tuple(gpus), driver=text, note="" if gpus else "NVML sees no GPU on this machine"
    )


def _energy() -> tuple[tuple[EnergySource, ...], str]:
    try:
        module = importlib.import_module("luminary.energy")
    except ImportError as exc:
        return (), f"the energy meters did not load ({exc})"
    probe = getattr(module, "probe", None)
    if probe is None:
        return (), "this installation has no energy meters (luminary.energy.probe)"
    try:
        statuses = probe()
    except (LuminaryError, OSError) as exc:
        return (), f"probing the meters failed: {exc}"
    return (
        tuple(
            EnergySource(
                name=str(s.name),
                device=str(s.device),
                readable=bool(s.readable),
                reason=str(s.reason or ""),
                fix=str(s.fix or ""),
            )
            for s in statuses
        ),
        "",
    )


def _store(timeout: float) -> StoreInfo:
    from luminary.config import Settings
    from luminary.errors import InvalidArgumentError

    try:
        settings = Settings.from_env()
    except InvalidArgumentError as exc:
        return StoreInfo("embedded", "?", None, None, f"bad environment: {exc}")
    if settings.uri:
        import httpx

        uri = settings.uri.rstrip("/")
        try:
            response = httpx.get(f"{uri}/readyz", timeout=timeout)
        except httpx.HTTPError as exc:
            return StoreInfo("server", uri, None, False, f"does not answer: {exc}")
        ok = response.status_code == 200
        detail = "ready" if ok else f"answers HTTP {response.status_code} on /readyz"
        return StoreInfo("server", uri, None, ok, detail)
    db = settings.db_url
    detail = "embedded, no server needed"
    if db.startswith("sqlite:///"):
        path = Path(db.removeprefix("sqlite:///"))
        detail += (
            f"; {path.stat().st_size / 2**20:.1f} MiB" if path.is_file() else "; not created yet"
        )
    return StoreInfo("embedded", mask_url(db), settings.blobs_url, None, detail)


def _ready(host: str, port: int, path: str, timeout: float) -> tuple[bool, str]:
    import httpx

    url = f"http://{_client_host(host)}:{port}{path}"
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        return False, f"{url}: {exc.__class__.__name__}"
    return response.status_code == 200, "" if response.status_code == 200 else (
        f"{url}: HTTP {response.status_code}"
    )


def _servers(timeout: float) -> tuple[ServerProcess, ...]:
    import psutil

    found = []
    me = os.getpid()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmdline = proc.info["cmdline"] or []
            if proc.info["pid"] == me or not any("luminary" in c for c in cmdline):
                continue
            parsed = parse_server_cmdline(cmdline)
            if parsed is None:
                continue
            try:
                conns = proc.net_connections(kind="inet")
                listening = sorted(
                    {c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN and c.laddr}
                )
            except psutil.AccessDenied:
                listening = []
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
        http_port = parsed["http_port"]
        if http_port == 0:  # any free port: try what it listens on
            http_port = None
        ready: bool | None = None
        detail = ""
        if not parsed["worker"]:
            path = "/v2/health/ready" if parsed["kind"] == "inference" else "/readyz"
            candidates = [http_port] if http_port else list(listening)
            for port in candidates:
                ready, detail = _ready(parsed["host"], port, path, timeout)
                if ready:
                    http_port = port
                    break
        found.append(
            ServerProcess(
                pid=int(proc.info["pid"]),
                kind=parsed["kind"],
                host=parsed["host"],
                http_port=http_port,
                grpc_port=parsed["grpc_port"] or None,
                listening=tuple(listening),
                worker=parsed["worker"],
                ready=ready,
                detail=detail,
            )
        )
    return tuple(found)


def collect(timeout: float = 1.0) -> Snapshot:
    """Look at this machine now; each HTTP check waits at most ``timeout`` seconds."""
    energy, note = _energy()
    return Snapshot(
        host=socket.gethostname(),
        cpu=_cpu(),
        memory=_memory(),
        gpu=_gpus(),
        energy=energy,
        energy_note=note,
        store=_store(timeout),
        servers=_servers(timeout),
    )
