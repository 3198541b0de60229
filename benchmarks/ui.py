"""The web UI against its targets: a runs table of 10,000 runs, and a 1,000,000-point chart.

    .venv/bin/python benchmarks/ui.py [--runs 10000] [--points 1000000] [--json PATH]

A temporary SQLite store gets ``--runs`` runs in one project (``store.create_run`` with a few
params, one ``val_auc`` point each, then marked finished) and one more run with ``--points``
points in one metric (``store.write_metrics`` in chunks). A real uvicorn server
(``create_app(store, auth=False)``, on a free loopback port, in a thread) serves it; httpx
measures, as wall time of each request over loopback:

1. the runs-table page ``/projects/{project}``: median of 20 requests for pages 1, 50 and 200
   and for a filtered, sorted page (target: under 300 ms each);
2. the chart data ``/runs/{id}/series/{key}?points=N`` of the 1M-point series: median of 10
   (the server downsamples; target with 3.: the chart loads under 1 s);
3. when Debian's Chromium and the playwright package are there: the time from navigating to
   ``/runs/{id}`` until the series has arrived and the chart's canvas is drawn (``charts.js``
   marks the chart's element with ``data-points`` once uPlot has the data; one animation
   frame later; median of 5).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import secrets
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from luminary.store import SqlStore
from luminary.tracking.models import RunStatus

console = Console()
PROJECT = "bench"
PAGE_TARGET_MS = 300.0
CHART_TARGET_MS = 1000.0
CHROMIUM = Path(os.environ.get("LUMINARY_TEST_CHROMIUM", "/usr/bin/chromium"))
# The runs table's query (src/luminary/server/ui/_runs.py): 50 runs a page; a filtered page
# sorted by a metric shown as a column.
FILTERED = {
    "filter": "params.lr < 0.005 and params.optimizer = 'adam'",
    "cols": "params.lr,params.optimizer,metrics.val_auc",
    "sort": "metrics.val_auc",
    "desc": "true",
    "page": 2,
}


def seed(store: SqlStore, runs: int, points: int) -> str:
    """Fill the store; returns the id of the run with the ``points``-point series."""
    store.ensure_project(PROJECT)
    t0 = time.perf_counter()
    ts = int(time.time() * 1000)
    for i in range(runs):
        params = {
            "lr": [0.0003, 0.001, 0.003, 0.01][i % 4],
            "batch": [32, 64, 128][i % 3],
            "optimizer": ["adam", "sgd"][i % 2],
            "seed": i,
        }
        run = store.create_run(PROJECT, name=f"run-{i:05d}", params=params)
        sid = secrets.randbits(62)
        auc = 0.5 + 0.49 * ((i * 7919) % 10_000) / 10_000
        store.write_metrics(run.id, [(sid, "val_auc")], [(sid, 0, ts, auc)])
        store.set_run_status(run.id, RunStatus.FINISHED)
        if i % 2000 == 1999:
            rate = (i + 1) / (time.perf_counter() - t0)
            console.print(f"  {i + 1:,} runs ({rate:,.0f}/s)")
    big = store.create_run(PROJECT, name="million", params={"lr": 0.001})
    sid = secrets.randbits(62)
    store.write_metrics(big.id, [(sid, "loss")], [])
    chunk = 100_000
    for start in range(0, points, chunk):
        store.write_metrics(
            big.id,
            [],
            [
                (sid, s, ts + s, math.exp(-s / (points / 5)) + 0.05 * math.sin(s / 500))
                for s in range(start, min(points, start + chunk))
            ],
        )
    store.set_run_status(big.id, RunStatus.FINISHED)
    console.print(f"seeded {runs:,} runs and {points:,} points in {time.perf_counter() - t0:.1f} s")
    return big.id


@contextmanager
def serve(store: SqlStore, tmp: Path) -> Iterator[str]:
    import uvicorn

    from luminary.server import create_app

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(store, tmp_dir=tmp, auth=False), log_level="warning", lifespan="off", ws="none"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def median_ms(fn: Callable[[], Any], n: int) -> tuple[float, Any]:
    fn()  # warm-up (templates compiled, caches filled)
    times = []
    last = None
    for _ in range(n):
        t0 = time.perf_counter()
        last = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), last


def get_ok(client: httpx.Client, path: str, params: dict[str, Any]) -> Callable[[], Any]:
    def fn() -> httpx.Response:
        r = client.get(path, params=params)
        r.raise_for_status()
        return r

    return fn


def browser_chart_ms(url: str, run_id: str, repeats: int) -> float | None:
    if not CHROMIUM.exists():
        console.print(f"[yellow]no Chromium at {CHROMIUM}: browser chart time skipped")
        return None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        console.print("[yellow]no playwright package: browser chart time skipped")
        return None
    times = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            for i in range(repeats + 1):
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                page = context.new_page()
                t0 = time.perf_counter()
                page.goto(f"{url}/runs/{run_id}")
                # charts.js sets data-points once uPlot has the fetched series and its canvas
                page.wait_for_selector("div.chart[data-points] canvas", timeout=60_000)
                # and one frame later it is on screen
                page.evaluate("() => new Promise(r => requestAnimationFrame(() => r(null)))")
                if i:  # the first one warms the browser's caches
                    times.append((time.perf_counter() - t0) * 1000)
                context.close()
        finally:
            browser.close()
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--chart-points", type=int, default=2_000, help="points asked of the server")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    results: dict[str, Any] = {
        "machine": {"python": sys.version.split()[0], "platform": platform.platform()},
        "runs": args.runs,
        "points": args.points,
        "rows": [],
    }
    rows: list[tuple[str, float | None, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="luminary-ui-bench-") as tmp_s:
        tmp = Path(tmp_s)
        store = SqlStore(f"sqlite:///{tmp / 'luminary.db'}", str(tmp / "blobs"), sqlite_sync="OFF")
        try:
            big = seed(store, args.runs, args.points)
            with serve(store, tmp) as url, httpx.Client(base_url=url, timeout=60) as client:
                table = f"/projects/{PROJECT}"
                for label, params in (
                    ("runs table, page 1", {}),
                    ("runs table, page 50", {"page": 50}),
                    ("runs table, page 200", {"page": 200}),
                    ("runs table, filtered + sorted by a metric, page 2", FILTERED),
                ):
                    ms, r = median_ms(get_ok(client, table, params), 20)
                    rows.append((label, ms, PAGE_TARGET_MS, f"{len(r.content) / 1024:.0f} KiB"))
                ms, r = median_ms(
                    get_ok(client, f"/runs/{big}/series/loss", {"points": args.chart_points}), 10
                )
                body = r.json()
                n = int(body["points"])
                rows.append(
                    (f"chart data, {args.points:,} → {n:,} points", ms, CHART_TARGET_MS, "")
                )
                ms_b = browser_chart_ms(url, big, 5)
                rows.append(
                    (f"chart drawn in Chromium ({args.points:,} points)", ms_b, CHART_TARGET_MS, "")
                )
        finally:
            store.close()

    out = Table(title=f"Web UI: {args.runs:,} runs, {args.points:,}-point series")
    for col in ("measure", "median ms", "target ms", "verdict", "note"):
        out.add_column(col)
    ok = True
    for label, ms, target, note in rows:
        if ms is None:
            verdict = "skipped"
        elif ms < target:
            verdict = "[green]pass"
        else:
            verdict, ok = "[red]FAIL", False
        out.add_row(label, "-" if ms is None else f"{ms:.1f}", f"< {target:.0f}", verdict, note)
        results["rows"].append({"measure": label, "median_ms": ms, "target_ms": target})
    console.print(out)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
