"""Team mode under load: the remote SDK against a real ``luminary server`` on this machine.

    .venv/bin/python benchmarks/remote_tracking.py [--points 200000] [--clients 20]
        [--seconds 30] [--artifact-gib 1] [--json PATH]

The server runs as its own process (``luminary server`` on a free loopback port, SQLite and
blobs in a temporary home) in team mode, with an admin token created in that home first;
every client reaches it through ``LUMINARY_URI`` and ``LUMINARY_TOKEN`` and changes no line of
its code. Measured:

1. one client: ``--points`` ``run.log`` calls, then ``flush()``; the rate counts until the
   server has acknowledged every point, and the count is read back;
2. ``--clients`` processes logging two metrics at ``--rate`` calls per second each for
   ``--seconds`` seconds at once (a steady rate, as training loops log; one client above
   measures the ceiling): every point each client acknowledged is counted back (nothing lost);
3. an artifact of ``--artifact-gib`` GiB uploaded with ``log_artifact`` and downloaded with
   ``download_artifacts``, while the server's resident memory is sampled: its growth is the
   figure (target under 100 MB), and the download is compared byte for byte by hash.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.table import Table

console = Console()
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def admin_token(env: dict[str, str]) -> str:
    """A server admin token in the server's home (team mode refuses to start without one)."""
    made = subprocess.run(
        [str(BIN / "luminary"), "tokens", "create", "--user", "bench", "--admin", "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return str(json.loads(made.stdout)["token"])


def start_server(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``luminary server`` in team mode; its admin token is put in ``LUMINARY_TOKEN``
    for this process and the client processes it starts."""
    port = free_port()
    env = dict(os.environ, LUMINARY_HOME=str(home))
    env.pop("LUMINARY_URI", None)
    os.environ["LUMINARY_TOKEN"] = admin_token(env)
    log = (home.parent / "server.log").open("wb")  # the access log: one line a request
    proc = subprocess.Popen(
        [str(BIN / "luminary"), "server", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    import httpx

    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("luminary server did not become ready in 60 s")


CLIENT = textwrap.dedent(
    """
    import json, sys, time
    import luminary as lm
    seconds, index, rate = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    sent = 0
    with lm.start_run(project="bench-remote", name=f"client-{index}", capture_env=False) as run:
        start = time.time()
        while (elapsed := time.time() - start) < seconds:
            due = int(elapsed * rate)  # a steady rate, as a training loop logs
            while sent < due:
                run.log({"loss": 0.5, "lr": 1e-3}, step=sent)
                sent += 1
            time.sleep(0.005)
        run.flush()
    print(json.dumps({"run": run.id, "sent": sent}))
    """
)


def single_client(url: str, points: int) -> dict[str, float]:
    os.environ["LUMINARY_URI"] = url
    import luminary as lm

    lm.set_store(None)
    with lm.start_run(project="bench-remote", capture_env=False) as run:
        start = time.perf_counter()
        for step in range(points):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
        logged = time.perf_counter() - start
        run.flush()
        elapsed = time.perf_counter() - start
    stored = len(lm.get_metric_history(run.id, "loss"))
    return {
        "points": points,
        "stored": stored,
        "rate": stored / elapsed,  # what the server stored, not what was offered
        "log_calls_per_s": points / logged,
    }


def many_clients(url: str, clients: int, seconds: float, rate: float) -> dict[str, Any]:
    env = dict(os.environ, LUMINARY_URI=url)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLIENT, str(seconds), str(i), str(rate)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(clients)
    ]
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=seconds + 300)
        if p.returncode != 0:
            raise RuntimeError(f"a client failed:\n{err}")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    import luminary as lm

    sent = stored = 0
    for r in reports:
        for key in ("loss", "lr"):
            sent += r["sent"]
            stored += len(lm.get_metric_history(r["run"], key))
    return {
        "clients": clients,
        "seconds": seconds,
        "sent": sent,
        "stored": stored,
        "lost": sent - stored,
        "rate": stored / seconds,  # what the server stored, not what was offered
    }


def big_artifact(url: str, gib: float, server: psutil.Process, tmp: Path) -> dict[str, Any]:
    import luminary as lm
    from luminary.storage.blobs import hash_file

    path = tmp / "model.bin"
    chunk = os.urandom(8 << 20)
    with path.open("wb") as fh:
        for _ in range(int(gib * 1024 / 8)):
            fh.write(chunk)
    baseline = server.memory_info().rss
    peak = [baseline]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], server.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with lm.start_run(project="bench-remote", capture_env=False) as run:
        start = time.perf_counter()
        run.log_artifact(path)
        up = time.perf_counter() - start
    start = time.perf_counter()
    (out,) = lm.download_artifacts(run.id, "model.bin", tmp / "down")
    down = time.perf_counter() - start
    stop.set()
    sampler.join()
    same = hash_file(out).digest == hash_file(path).digest
    size = path.stat().st_size
    return {
        "bytes": size,
        "upload_s": up,
        "download_s": down,
        "identical": same,
        "server_rss_growth_mb": (peak[0] - baseline) / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument(
        "--rate", type=float, default=2000.0, help="log calls per second per client (2 keys each)"
    )
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--artifact-gib", type=float, default=1.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_before": os.getloadavg()[0],
    }
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(Path(tmp) / "server-home")
        os.environ["LUMINARY_HOME"] = str(Path(tmp) / "client-home")
        try:
            with console.status(f"one client, {args.points:,} points …"):
                results["single"] = single_client(url, args.points)
            with console.status(f"{args.clients} clients for {args.seconds:g} s …"):
                results["many"] = many_clients(url, args.clients, args.seconds, args.rate)
            with console.status(f"a {args.artifact_gib:g} GiB artifact up and down …"):
                results["artifact"] = big_artifact(
                    url, args.artifact_gib, psutil.Process(proc.pid), Path(tmp)
                )
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    results["load_after"] = os.getloadavg()[0]
    s, m, a = results["single"], results["many"], results["artifact"]
    table = Table(title="remote SDK against a local luminary server", title_justify="left")
    for col in ("measure", "result", "target"):
        table.add_column(col)
    table.add_row(
        "one client: run.log + flush, durable on the server",
        f"{s['rate']:,.0f} points/s ({s['stored']:,}/{s['points']:,} stored)",
        ">= 50,000 points/s",
    )
    table.add_row(
        f"{m['clients']} clients for {m['seconds']:g} s",
        f"{m['stored']:,} of {m['sent']:,} points stored, {m['lost']} lost "
        f"({m['rate']:,.0f} stored points/s together)",
        "nothing lost",
    )
    table.add_row(
        f"{a['bytes'] / 2**30:.2f} GiB artifact",
        f"up {a['upload_s']:.1f} s, down {a['download_s']:.1f} s, "
        f"identical: {a['identical']}; server RSS growth "
        f"{a['server_rss_growth_mb']:.0f} MB",
        "< 100 MB",
    )
    console.print(table)
    console.print(
        f"load {results['load_before']:.1f} -> {results['load_after']:.1f}; "
        f"{results['machine']}; {results['date']}"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    from _energy import run_measured

    run_measured(main)
