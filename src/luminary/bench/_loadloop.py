"""The closed loop behind :func:`~luminary.bench._loadgen.run_load`: slots that each keep one
pre-serialised request in flight, in one process or several.

:func:`run` takes a :class:`Plan` (where, what bytes, how many slots, how long) and returns a
:class:`Tally` of the latencies of successes completed inside the measured window and the
errors by status. gRPC goes through ``grpc.aio`` generic calls (bytes in, bytes out) on one
channel per :data:`STREAMS_PER_CHANNEL` slots; HTTP/1.1 through ``asyncio`` streams, one
keep-alive connection per slot; uvloop drives the loop when installed. Several processes are
fresh interpreters fed the plan on stdin: grpc does not survive fork, and multiprocessing's
spawn would re-run the caller's script when it lacks a ``__main__`` guard.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import pickle
import select
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from luminary.bench._control import Endpoint
from luminary.errors import LuminaryError

__all__ = ["STREAMS_PER_CHANNEL", "Plan", "Progress", "Tally", "run"]

STREAMS_PER_CHANNEL = 32
DRAIN_SECONDS = 30.0  # the longest the run waits for requests still in flight at its end
GRPC_METHOD = "/inference.GRPCInferenceService/ModelInfer"
Progress = Callable[[float], None]  # called with the seconds of the run elapsed so far


@dataclass
class Tally:
    """What one process measured: latencies (s) of successes and errors by status."""

    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Plan:
    """One run: the server, the serialised request, the slots, the warm-up and the window."""

    endpoint: Endpoint
    payload: bytes
    concurrency: int
    warmup: float
    duration: float


async def _grpc_slots(plan: Plan, tally: Tally, window: tuple[float, float]) -> None:
    import grpc
    import grpc.aio

    opened, closing = window
    clock = time.perf_counter
    payload, lat, errors = plan.payload, tally.latencies, tally.errors
    options = [
        ("grpc.max_receive_message_length", 1 << 30),
        ("grpc.max_send_message_length", 1 << 30),
        ("grpc.use_local_subchannel_pool", 1),  # each channel its own connection
    ]
    count = math.ceil(plan.concurrency / STREAMS_PER_CHANNEL)
    channels = [grpc.aio.insecure_channel(plan.endpoint.address, options) for _ in range(count)]
    calls = [ch.unary_unary(GRPC_METHOD) for ch in channels]

    async def slot(call: Any) -> None:
        while True:
            t0 = clock()
            if t0 >= closing:
                return
            try:
                reply = await call(payload)
            except grpc.aio.AioRpcError as exc:
                t1 = clock()
                if opened <= t1 <= closing:
                    errors[exc.code().name] += 1
                if exc.code() == grpc.StatusCode.UNAVAILABLE:
                    await asyncio.sleep(0.001)  # no busy loop against a server gone away
                continue
            t1 = clock()
            if opened <= t1 <= closing:
                if reply:
                    lat.append(t1 - t0)
                else:
                    errors["EMPTY_REPLY"] += 1

    try:
        await _all(slot(calls[i % count]) for i in range(plan.concurrency))
    finally:
        for ch in channels:
            await ch.close()


async def _http_slots(plan: Plan, tally: Tally, window: tuple[float, float]) -> None:
    opened, closing = window
    clock = time.perf_counter
    host, port = plan.endpoint.host, plan.endpoint.port
    payload, lat, errors = plan.payload, tally.latencies, tally.errors

    async def slot() -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            while True:
                t0 = clock()
                if t0 >= closing:
                    return
                try:
                    if writer is None or reader is None:
                        reader, writer = await asyncio.open_connection(host, port)
                    writer.write(payload)
                    head = (await reader.readuntil(b"\r\n\r\n")).lower()
                    status = int(head[9:12])
                    at = head.find(b"\ncontent-length:")  # not inference-header-…
                    length = int(head[at + 16 : head.index(b"\r\n", at)]) if at >= 0 else 0
                    body = await reader.readexactly(length)
                except (OSError, EOFError, ValueError, asyncio.LimitOverrunError) as exc:
                    t1 = clock()
                    if opened <= t1 <= closing:
                        errors[_connection_error(exc)] += 1
                    if writer is not None:
                        writer.close()
                    reader = writer = None
                    await asyncio.sleep(0.001)
                    continue
                t1 = clock()
                if opened <= t1 <= closing:
                    if status == 200 and body:
                        lat.append(t1 - t0)
                    else:
                        errors[f"HTTP {status}"] += 1
                if b"connection: close" in head:
                    writer.close()
                    reader = writer = None
        finally:
            if writer is not None:
                writer.close()

    await _all(slot() for _ in range(plan.concurrency))


def _connection_error(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, asyncio.IncompleteReadError | EOFError | ConnectionResetError):
        return "connection closed"
    if isinstance(exc, ValueError | asyncio.LimitOverrunError):
        return "bad reply"
    return "connection error"


async def _all(slots: Any) -> None:
    tasks = [asyncio.ensure_future(s) for s in slots]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()


async def _drive(
    plan: Plan,
    start: float,
    progress: Progress | None = None,
    at_open: Callable[[], Any] | None = None,
) -> Tally:
    """Run the slots of one process; ``at_open`` runs in a thread when the window opens."""
    tally = Tally()
    opened = start + plan.warmup
    window = (opened, opened + plan.duration)
    slots = _grpc_slots if plan.endpoint.protocol == "grpc" else _http_slots
    main = asyncio.ensure_future(slots(plan, tally, window))
    loop = asyncio.get_running_loop()
    opening: asyncio.Future[Any] | None = None
    deadline = window[1] + DRAIN_SECONDS
    while not main.done():
        now = time.perf_counter()
        if progress is not None:
            progress(min(now - start, plan.warmup + plan.duration))
        if at_open is not None and opening is None and now >= opened:
            opening = loop.run_in_executor(None, at_open)
        if now > deadline:
            main.cancel()
            tally.errors["unfinished"] += 1
            break
        step = 0.1 if at_open is None or opening is not None else min(0.1, opened - now)
        await asyncio.wait({main}, timeout=max(step, 0.0))
    with contextlib.suppress(asyncio.CancelledError):
        await main
    if opening is not None:
        await opening
    return tally


def _event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _run_loop(coro: Any) -> Any:
    with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
        return runner.run(coro)


# The child's whole program: its parent's import path first, then the plan, both pickled on
# stdin. A fresh interpreter, not multiprocessing: grpc does not survive fork, and spawn would
# re-run the caller's unguarded script.
_CHILD = (
    "import pickle, sys; sys.path[:0] = pickle.load(sys.stdin.buffer); "
    "from luminary.bench._loadloop import _child_main; _child_main()"
)


def _child_main() -> None:
    """One of ``processes`` generators: read the plan, say ready, wait for go, run, report."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    plan = pickle.load(stdin)
    stdout.write(b"ready\n")
    stdout.flush()
    if stdin.readline() != b"go\n":
        return
    tally = _run_loop(_drive(plan, time.perf_counter()))
    pickle.dump((tally.latencies, dict(tally.errors)), stdout)
    stdout.flush()


def _spread(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _in_processes(
    plan: Plan, processes: int, progress: Progress | None, at_open: Callable[[], Any]
) -> Tally:
    children: list[subprocess.Popen[bytes]] = []
    tally = Tally()
    try:
        for share in _spread(plan.concurrency, processes):
            child = subprocess.Popen(
                [sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
            children.append(child)
            assert child.stdin is not None
            part = Plan(plan.endpoint, plan.payload, share, plan.warmup, plan.duration)
            pickle.dump([p for p in sys.path if p], child.stdin)
            pickle.dump(part, child.stdin)
            child.stdin.flush()
        for child in children:
            assert child.stdout is not None
            ready, _, _ = select.select([child.stdout], [], [], 60)
            if not ready or child.stdout.readline() != b"ready\n":
                msg = (
                    f"a load generator process did not start (exit status {child.poll()}); "
                    "see its error above, or run with processes=1"
                )
                raise LuminaryError(msg)
        start = time.perf_counter()
        for child in children:
            assert child.stdin is not None
            child.stdin.write(b"go\n")
            child.stdin.flush()
        opened = False
        total = plan.warmup + plan.duration
        deadline = start + total + DRAIN_SECONDS + 10
        pending = [child.stdout for child in children if child.stdout is not None]
        while pending:
            now = time.perf_counter()
            if progress is not None:
                progress(min(now - start, total))
            if not opened and now >= start + plan.warmup:
                at_open()
                opened = True
            if now > deadline:
                msg = f"load generator processes did not finish within {deadline - start:.0f} s"
                raise LuminaryError(msg)
            for stream in select.select(pending, [], [], 0.1)[0]:
                pending.remove(stream)
                try:
                    latencies, errors = pickle.load(stream)
                except EOFError:
                    tally.errors["generator process failed"] += 1
                    continue
                tally.latencies.extend(latencies)
                tally.errors.update(errors)
        if not opened:
            at_open()
    finally:
        for child in children:
            for pipe in (child.stdin, child.stdout):
                if pipe is not None:
                    pipe.close()
            try:
                child.wait(5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    return tally


def run(
    plan: Plan,
    processes: int = 1,
    progress: Progress | None = None,
    at_open: Callable[[], Any] | None = None,
) -> Tally:
    """Run ``plan`` over ``processes`` processes; ``at_open`` is called once when the measured
    window opens (from another thread when ``processes`` is 1)."""
    if processes <= 1:
        tally: Tally = _run_loop(_drive(plan, time.perf_counter(), progress, at_open))
        return tally
    return _in_processes(plan, processes, progress, at_open or (lambda: None))
