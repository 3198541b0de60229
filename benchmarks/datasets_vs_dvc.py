"""Luminary datasets vs DVC, side by side on one machine: adding a folder of files.

    .venv/bin/python benchmarks/datasets_vs_dvc.py [--files 2000] [--size-mib 1] [--json PATH]

A folder of ``--files`` random files of ``--size-mib`` MiB is written and read once (so both
tools see page-cached data). Then, each command timed end to end as a fresh process (command
start-up included, as a user runs it), with a fresh cache/store for every cold run:

1. cold add: ``dvc add data`` (in a new git + DVC repository) vs ``luminary datasets add``
   in copy mode (every file copied into the blob store, like DVC's cache) and in reference mode;
2. ten files changed, add again (both tools reuse what they know);
3. nothing changed, add again;
4. hashing throughput alone (Luminary's scanner with no cache, in process);
5. two manifests of ``--manifest-entries`` files written and diffed, with the growth of the
   process's resident memory sampled throughout (bounded: manifests are streamed).

Before every cold add the data is written back (``sync``) and read, so it sits clean in the
page cache, and the previous run's writes are flushed after it: neither tool pays for another's
write-back.

Each timing is the median of ``--repeats`` runs. The machine is small and shared: the load
average is printed with the results.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()
BIN = Path(sys.executable).parent


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return elapsed


def make_folder(root: Path, files: int, size: int) -> Path:
    data = root / "data"
    data.mkdir(parents=True)
    for i in range(files):
        (data / f"part-{i:05d}.bin").write_bytes(os.urandom(size))
    return data


def warm(folder: Path) -> None:
    """Page-cached and clean: written back to disk, then read, so that no tool pays for the
    write-back of the setup's own 2 GB (or of the previous run's cache)."""
    os.sync()
    for p in folder.iterdir():
        p.read_bytes()


def change(folder: Path, n: int, round_: int) -> None:
    for p in sorted(folder.iterdir())[:n]:
        with p.open("r+b") as fh:
            fh.write(f"change {round_} {time.time_ns()}".encode())
        past = time.time() - 5  # not "racy": older than the hash cache's safety window
        os.utime(p, (past, past))


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def dvc_cycle(base: Path, files: int, size: int, n_changed: int) -> dict[str, float]:
    repo = base / "dvc-repo"
    repo.mkdir()
    run(["git", "init", "-q"], repo)
    run([str(BIN / "dvc"), "init", "-q"], repo)
    run([str(BIN / "dvc"), "config", "core.analytics", "false"], repo)
    data = make_folder(repo, files, size)
    warm(data)
    times = {"cold": run([str(BIN / "dvc"), "add", "-q", "data"], repo)}
    os.sync()
    change(data, n_changed, 1)
    times["changed"] = run([str(BIN / "dvc"), "add", "-q", "data"], repo)
    times["unchanged"] = run([str(BIN / "dvc"), "add", "-q", "data"], repo)
    shutil.rmtree(repo)
    return times


def luminary_cycle(base: Path, data: Path, n_changed: int, mode: str) -> dict[str, float]:
    home = base / f"home-{mode}-{time.time_ns()}"
    env = dict(os.environ, LUMINARY_HOME=str(home))
    cmd = [str(BIN / "luminary"), "datasets", "add", "bench", str(data)]
    if mode == "reference":
        cmd.append("--reference")
    warm(data)
    times = {"cold": run(cmd, base, env)}
    os.sync()
    change(data, n_changed, 2 if mode == "copy" else 3)
    times["changed"] = run(cmd, base, env)
    times["unchanged"] = run(cmd, base, env)
    shutil.rmtree(home)
    return times


def hash_throughput(data: Path) -> float:
    from luminary.datasets._scan import scan

    start = time.perf_counter()
    total = sum(item.entry.size for item in scan([data], cache=None))
    return total / (time.perf_counter() - start)


def manifest_memory(entries: int) -> dict[str, float]:
    """Build two manifests of ``entries`` files (the second with one file in 1,000 changed)
    and diff them, sampling the process's resident memory as it goes."""
    import threading

    import psutil

    from luminary.datasets._manifest import FileEntry, ManifestWriter, diff_manifests

    def listing(changed: bool) -> Iterator[FileEntry]:
        for i in range(entries):
            digest = f"{i:064x}"
            if changed and i % 1000 == 0:
                digest = f"{i + 1:064x}"
            yield FileEntry(f"run{i // 10000:03d}/file-{i:08d}.root", 1000 + i % 7, digest)

    process = psutil.Process()
    baseline = process.memory_info().rss
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        start = time.perf_counter()
        for changed in (False, True):
            path = Path(tmp) / f"m{int(changed)}"
            with path.open("wb") as fh, ManifestWriter(fh) as writer:
                for entry in listing(changed):
                    writer.write(entry)
            paths.append(path)
        built = time.perf_counter() - start
        start = time.perf_counter()
        with paths[0].open("rb") as a, paths[1].open("rb") as b:
            n = sum(1 for _ in diff_manifests(a, b))
        diffed = time.perf_counter() - start
        size = paths[0].stat().st_size
    done.set()
    sampler.join()
    return {
        "entries": entries,
        "build_s": built,
        "diff_s": diffed,
        "changes": n,
        "peak_mib": (peak[0] - baseline) / 2**20,
        "manifest_mib": size / 2**20,
    }


def repeat(fn: Callable[[], dict[str, float]], times: int) -> dict[str, float]:
    results = [fn() for _ in range(times)]
    return {k: median([r[k] for r in results]) for k in results[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--size-mib", type=float, default=1.0)
    parser.add_argument("--changed", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--manifest-entries", type=int, default=1_000_000)
    parser.add_argument("--skip-dvc", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    size = int(args.size_mib * 2**20)
    total_gb = args.files * size / 1e9
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "files": args.files,
        "size_bytes": size,
        "load_before": os.getloadavg()[0],
    }
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        base = Path(tmp)
        if not args.skip_dvc:
            with console.status(f"DVC: add {args.files} files x {args.size_mib} MiB …"):
                results["dvc"] = repeat(
                    lambda: dvc_cycle(base, args.files, size, args.changed), args.repeats
                )
        data = make_folder(base / "lum", args.files, size)
        warm(data)
        for mode in ("copy", "reference"):
            with console.status(f"Luminary ({mode}): add {args.files} files …"):
                results[f"luminary_{mode}"] = repeat(
                    lambda mode=mode: luminary_cycle(base, data, args.changed, mode), args.repeats
                )
        with console.status("hashing throughput …"):
            results["hash_gb_s"] = median([hash_throughput(data) for _ in range(3)]) / 1e9
    with console.status(f"manifest of {args.manifest_entries:,} entries …"):
        results["manifest"] = manifest_memory(args.manifest_entries)
    results["load_after"] = os.getloadavg()[0]

    table = Table(
        title=f"add {args.files:,} files x {args.size_mib:g} MiB ({total_gb:.2f} GB), "
        f"median of {args.repeats}",
        title_justify="left",
    )
    for col in ("step", "DVC", "Luminary copy", "ratio", "Luminary reference", "ratio", "target"):
        table.add_column(col, justify="left" if col in ("step", "target") else "right")
    targets = {"cold": "≥ 5x faster than DVC", "changed": "< 1 s", "unchanged": ""}
    for step in ("cold", "changed", "unchanged"):
        dvc = results.get("dvc", {}).get(step)
        copy, ref = results["luminary_copy"][step], results["luminary_reference"][step]

        def ratio(x: float, dvc: float | None = dvc) -> str:
            return f"{dvc / x:.1f}x" if dvc else "-"

        table.add_row(
            step,
            f"{dvc:.2f} s" if dvc else "-",
            f"{copy:.2f} s",
            ratio(copy),
            f"{ref:.2f} s",
            ratio(ref),
            targets[step],
        )
    console.print(table)
    m = results["manifest"]
    console.print(
        f"hashing (no cache, page-cached data): [bold]{results['hash_gb_s']:.2f} GB/s[/] "
        f"(target ≥ 1 GB/s)\n"
        f"manifest of {m['entries']:,} files: written twice in {m['build_s']:.1f} s "
        f"({m['manifest_mib']:.0f} MiB each), diffed in {m['diff_s']:.1f} s "
        f"({m['changes']:,} changes); resident memory growth {m['peak_mib']:.1f} MiB\n"
        f"load average {results['load_before']:.1f} → {results['load_after']:.1f}; "
        f"{results['machine']}; {results['date']}"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    from _energy import run_measured

    run_measured(main)
