"""The dynamic batcher: requests from many clients merged into batches, one queue per model.

Threads: front ends call :meth:`Batcher.submit` from any thread or event loop, or
:meth:`Batcher.run` from a synchronous handler thread. One worker thread per model instance
forms a batch (under a formation lock, so exactly one thread waits for a batch to fill), takes
an idle instance, runs the batch, splits the outputs back and completes each request. A
synchronous caller that finds an instance idle runs the batch itself instead (a leader), which
saves two thread hand-overs per batch. A request completes through a ``threading.Lock`` (sync
callers) or an ``asyncio`` future woken once per batch per event loop (async callers).

Inputs are ``numpy`` views over the request bytes; the only copy on the way in is the
concatenation into the batch (none when a batch holds one request).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from luminary.serving._errors import (
    ModelExecutionError,
    RetiredError,
    ServingError,
    UnavailableError,
)
from luminary.serving._types import ModelSpec
from luminary.serving.backends import Backend

log = logging.getLogger("luminary.serving")

DEFAULT_MAX_QUEUE_SIZE = 4096
# A synchronous caller that ran its own batch keeps serving the queue while batches take less
# than LEAD_CHEAP_NS each, for at most LEAD_EXTRA_NS more (its own answer waits meanwhile).
LEAD_CHEAP_NS = 200_000
LEAD_EXTRA_NS = 500_000


class Pending:
    """One request on its way through the batcher."""

    __slots__ = (
        "deadline_ns",
        "enqueued_ns",
        "error",
        "events",
        "feeds",
        "future",
        "lock",
        "loop",
        "priority",
        "result",
    )

    def __init__(
        self,
        feeds: dict[str, np.ndarray],
        events: int,
        *,
        priority: int = 0,
        timeout_us: int = 0,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.feeds = feeds
        self.events = events
        self.priority = priority
        self.enqueued_ns = time.monotonic_ns()
        self.deadline_ns = self.enqueued_ns + timeout_us * 1000 if timeout_us > 0 else 0
        self.result: dict[str, np.ndarray] | None = None
        self.error: ServingError | None = None
        self.loop = loop
        self.future: asyncio.Future[None] | None = None
        self.lock: threading.Lock | None = None
        if loop is not None:
            self.future = loop.create_future()
        else:
            self.lock = threading.Lock()
            self.lock.acquire()

    def wait(self, timeout: float | None = None) -> bool:
        """Block a sync caller until the request completes; False on timeout."""
        assert self.lock is not None
        return self.lock.acquire(timeout=-1 if timeout is None else timeout)


@dataclass(slots=True)
class BatchTimings:
    """What one executed batch cost, for statistics and metrics."""

    requests: int
    events: int
    queue_ns: int  # summed over the requests
    request_ns: int  # summed over the requests, enqueue to completion
    input_ns: int
    infer_ns: int
    output_ns: int


Observer = Callable[[BatchTimings | None, int], None]  # (batch or None, failed requests)


def _wake(items: Sequence[Pending]) -> None:
    for p in items:
        fut = p.future
        if fut is not None and not fut.done():
            fut.set_result(None)


class Batcher:
    """Queue and workers of one model version. Thread-safe."""

    def __init__(
        self, spec: ModelSpec, instances: Sequence[Backend], observer: Observer | None = None
    ) -> None:
        self.spec = spec
        self._instances = list(instances)
        self._observer = observer
        cfg = spec.batching
        self._max_batch = max(1, spec.max_batch_size) if cfg.enabled else 1
        self._delay_ns = cfg.max_queue_delay_us * 1000 if cfg.enabled else 0
        self._preferred = tuple(sorted(s for s in cfg.preferred_batch_sizes if s > 0))
        self._levels = max(1, cfg.priority_levels)
        self._default_priority = min(max(1, cfg.default_priority), self._levels)
        self._max_queue = cfg.queue.max_queue_size or DEFAULT_MAX_QUEUE_SIZE
        self._queues: list[deque[Pending]] = [deque() for _ in range(self._levels)]
        self._queued = 0
        self._queued_events = 0
        self._cond = threading.Condition(threading.Lock())
        self._form_lock = threading.Lock()
        self._closed = False
        self._inputs = [s.name for s in spec.inputs]
        self._outputs = [s.name for s in spec.outputs]
        # Instances not running a batch. A worker thread per instance forms and runs batches;
        # a synchronous caller that finds an instance idle runs the batch itself (see run()).
        self._idle: list[Backend] = list(self._instances)
        self._open_backends = len(self._instances)
        self._threads = [
            threading.Thread(target=self._work, name=f"lm-batch-{spec.name}-{i}", daemon=True)
            for i in range(len(self._instances))
        ]
        for t in self._threads:
            t.start()

    @property
    def queued(self) -> int:
        return self._queued

    def priority_level(self, requested: int) -> int:
        """Map a request's priority (0: the model's default) to a queue level, 1 first."""
        return self._default_priority if requested == 0 else requested

    def _enqueue(self, p: Pending) -> None:
        """Append ``p`` to its priority queue; the caller holds ``self._cond``."""
        if self._closed:
            raise RetiredError
        if self._queued >= self._max_queue:
            msg = (
                f"model {self.spec.name!r} is overloaded: {self._queued} requests queued "
                f"(max_queue_size {self._max_queue}); retry later or on another server"
            )
            raise UnavailableError(msg)
        self._queues[self.priority_level(p.priority) - 1].append(p)
        self._queued += 1
        self._queued_events += p.events

    def submit(self, p: Pending) -> None:
        """Queue a request; raise :class:`UnavailableError` when the queue is full."""
        with self._cond:
            self._enqueue(p)
            if self._idle:  # else whoever hands an instance back wakes a worker
                self._cond.notify()

    def run(self, p: Pending, timeout: float | None = None) -> bool:
        """Queue ``p`` and wait for it, from a synchronous caller (a gRPC handler thread).

        When an instance is idle and no queue delay is configured, the calling thread forms
        and runs the batch itself (with whatever else is queued), instead of waking a worker
        and sleeping until it is done: on a busy core, each thread hand-over costs more than a
        small model's whole batch. Returns False if ``timeout`` passed first.
        """
        with self._cond:
            self._enqueue(p)
            backend = self._idle.pop() if self._idle and not self._delay_ns else None
            if backend is None and self._idle:
                self._cond.notify()
        if backend is not None:
            try:
                self._lead(backend, p)
            finally:
                self._release(backend)
        return p.wait(timeout)

    def _lead(self, backend: Backend, p: Pending) -> None:
        """Run batches on ``backend`` until ``p`` is answered.

        Then, while more requests wait and batches are cheap (a small model), keep running
        them for up to :data:`LEAD_EXTRA_NS`: handing over to a worker thread would cost more.
        """
        done_at = 0
        while True:
            with self._cond:
                batch = self._take(self._target()) if self._queued else []
            if not batch:
                return  # nothing left, or another instance took ``p``
            t0 = time.monotonic_ns()
            self._execute(backend, batch)
            t1 = time.monotonic_ns()
            if p.lock is not None and p.lock.locked():
                continue
            done_at = done_at or t1
            if t1 - t0 > LEAD_CHEAP_NS or t1 - done_at > LEAD_EXTRA_NS:
                return

    def _release(self, backend: Backend) -> None:
        """Give an instance back; after close() with nothing queued, close it."""
        with self._cond:
            if self._closed and not self._queued:
                self._open_backends -= 1
                close = True
            else:
                self._idle.append(backend)
                close = False
                if self._queued:
                    self._cond.notify()
        if close:
            backend.close()

    def close(self, wait: bool = True) -> None:
        """Stop accepting requests; queued ones still run. ``wait`` joins the workers."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if wait:
            for t in self._threads:
                t.join()
        # Instances are closed once the queue is drained, by the exiting workers or by a caller
        # handing one back (``_release``): closing them here would fail the queued requests
        # when ``wait`` is False (a hot swap).

    # -- workers ------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._form_lock:
                got = self._next_batch()
            if got is None:
                return
            backend, batch = got
            try:
                if batch:
                    self._execute(backend, batch)
            finally:
                self._release(backend)

    def _target(self) -> int:
        """How many events to wait for: a preferred size that can be formed, or the max."""
        if self._preferred:
            fits = [s for s in self._preferred if s <= self._queued_events]
            if fits and fits[-1] <= self._max_batch:
                return fits[-1]
        return self._max_batch

    def _next_batch(self) -> tuple[Backend, list[Pending]] | None:
        """Wait for work and an idle instance; None when closed and drained."""
        cond = self._cond
        with cond:
            while not (self._queued and self._idle):
                if self._closed and not self._queued:
                    idle, self._idle = self._idle, []
                    self._open_backends -= len(idle)
                    for backend in idle:
                        backend.close()
                    cond.notify_all()  # the other workers exit too
                    return None
                cond.wait()
            if self._delay_ns and not self._closed:
                oldest = min(q[0].enqueued_ns for q in self._queues if q)
                until = oldest + self._delay_ns
                while self._queued_events < self._max_batch and not self._closed:
                    if self._preferred and self._queued_events in self._preferred:
                        break
                    now = time.monotonic_ns()
                    if now >= until:
                        break
                    cond.wait((until - now) / 1e9)
                if not self._queued:  # a synchronous caller ran them meanwhile
                    return self._idle.pop(), []
            return self._idle.pop(), self._take(self._target())

    def _take(self, target: int) -> list[Pending]:
        """Take requests in priority then arrival order, up to ``target`` events."""
        batch: list[Pending] = []
        expired: list[Pending] = []
        events = 0
        now = time.monotonic_ns()
        first_shapes: list[tuple[int, ...]] | None = None
        for queue in self._queues:
            while queue:
                p = queue[0]
                if p.deadline_ns and now > p.deadline_ns:
                    queue.popleft()
                    expired.append(p)
                    continue
                if batch:
                    if events + p.events > target:
                        break
                    if first_shapes is None:
                        first_shapes = [batch[0].feeds[n].shape[1:] for n in self._inputs]
                    if [p.feeds[n].shape[1:] for n in self._inputs] != first_shapes:
                        break  # differently shaped events batch separately, order kept
                queue.popleft()
                batch.append(p)
                events += p.events
                if self._max_batch == 1 or not self.spec.batched:
                    break
            if batch and (events >= target or not self.spec.batched):
                break
        self._queued -= len(batch) + len(expired)
        self._queued_events -= events + sum(p.events for p in expired)
        if expired:
            for p in expired:
                waited = (now - p.enqueued_ns) // 1000
                p.error = UnavailableError(
                    f"request timed out after {waited} µs in the queue of model "
                    f"{self.spec.name!r}; raise its timeout or retry"
                )
            self._complete(expired)
            if self._observer is not None:
                self._observe(None, len(expired))
        return batch

    def _execute(self, backend: Backend, batch: list[Pending]) -> None:
        t0 = time.monotonic_ns()
        try:
            if len(batch) == 1:
                feeds = batch[0].feeds
            else:
                feeds = {n: np.concatenate([p.feeds[n] for p in batch]) for n in self._inputs}
            t1 = time.monotonic_ns()
            outs = backend.run(feeds, self._outputs)
            t2 = time.monotonic_ns()
            if len(batch) == 1:
                batch[0].result = dict(zip(self._outputs, outs, strict=True))
            elif self.spec.batched:
                offset = 0
                for p in batch:
                    end = offset + p.events
                    p.result = {n: o[offset:end] for n, o in zip(self._outputs, outs, strict=True)}
                    offset = end
            else:
                batch[0].result = dict(zip(self._outputs, outs, strict=True))
        except Exception as exc:  # noqa: BLE001 - a runtime error fails this batch only
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            err = ModelExecutionError(f"model {self.spec.name!r} failed to run: {detail}")
            for p in batch:
                p.result = None
                p.error = err
            self._complete(batch)
            if self._observer is not None:
                self._observe(None, len(batch))
            return
        t3 = time.monotonic_ns()
        if self._observer is not None:  # before waking anyone: this thread still has the CPU
            enqueued = sum(p.enqueued_ns for p in batch)
            self._observe(
                BatchTimings(
                    requests=len(batch),
                    events=sum(p.events for p in batch),
                    queue_ns=t0 * len(batch) - enqueued,
                    request_ns=t3 * len(batch) - enqueued,
                    input_ns=t1 - t0,
                    infer_ns=t2 - t1,
                    output_ns=t3 - t2,
                ),
                0,
            )
        self._complete(batch)

    def _observe(self, timings: BatchTimings | None, failed: int) -> None:
        """Statistics must never stop a batch from being answered."""
        assert self._observer is not None
        try:
            self._observer(timings, failed)
        except Exception:
            log.exception("statistics of model %r failed", self.spec.name)

    @staticmethod
    def _complete(batch: list[Pending]) -> None:
        loops: dict[asyncio.AbstractEventLoop, list[Pending]] = {}
        for p in batch:
            if p.loop is None:
                assert p.lock is not None
                p.lock.release()
            else:
                loops.setdefault(p.loop, []).append(p)
        for loop, items in loops.items():
            try:
                loop.call_soon_threadsafe(_wake, items)
            except RuntimeError:  # the caller's loop has closed: nobody waits any more
                continue
