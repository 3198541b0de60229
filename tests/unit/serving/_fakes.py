"""A scripted backend and small specs for the batcher and core tests (no model file)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from luminary.serving._types import BatchingConfig, ModelSpec, QueuePolicy, TensorConfig
from luminary.serving.backends import Backend, BackendOptions

RELEASE_TIMEOUT = 10.0  # a held batch never blocks a test run for longer


class RecordingBackend(Backend):
    """Records the feeds of every batch; answers ``y = 2 * x + 1`` row for row.

    ``hold`` (cleared) keeps the first batch running until the test sets it, so the test can
    queue requests behind a busy worker; ``fail_on`` makes a batch containing that value raise;
    after :meth:`close`, :meth:`run` raises as a freed runtime would.
    """

    name = "recording"
    platform = "recording"

    def __init__(self, *, hold: bool = False, fail_on: float | None = None) -> None:
        self.batches: list[np.ndarray] = []
        self.started = threading.Event()
        self.hold = threading.Event()
        if not hold:
            self.hold.set()
        self.fail_on = fail_on
        self.closed = False

    @classmethod
    def load(cls, path: Path, options: BackendOptions) -> RecordingBackend:
        return cls()

    @property
    def inputs(self) -> tuple[TensorConfig, ...]:
        return (TensorConfig("x", "FP32", (-1, -1)),)

    @property
    def outputs(self) -> tuple[TensorConfig, ...]:
        return (TensorConfig("y", "FP32", (-1, -1)),)

    def run(self, feeds: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
        if self.closed:
            raise RuntimeError("the session was closed")
        x = feeds["x"]
        self.batches.append(x.copy())
        self.started.set()
        self.hold.wait(RELEASE_TIMEOUT)
        if self.fail_on is not None and bool((x == self.fail_on).any()):
            raise RuntimeError("kernel exploded\nsecond line of the trace")
        return [x * 2 + 1]

    def close(self) -> None:
        self.closed = True

    @property
    def batch_rows(self) -> list[int]:
        return [len(b) for b in self.batches]


def spec(
    *,
    max_batch: int = 8,
    delay_us: int = 0,
    preferred: tuple[int, ...] = (),
    levels: int = 1,
    default_priority: int = 1,
    queue: QueuePolicy | None = None,
    dims: tuple[int, ...] = (-1,),
) -> ModelSpec:
    """A one-input (``x``), one-output (``y``) FP32 model spec."""
    return ModelSpec(
        name="fake",
        version="1",
        platform="recording",
        backend="recording",
        max_batch_size=max_batch,
        inputs=(TensorConfig("x", "FP32", dims),),
        outputs=(TensorConfig("y", "FP32", dims),),
        batching=BatchingConfig(
            enabled=max_batch > 0,
            max_queue_delay_us=delay_us,
            preferred_batch_sizes=preferred,
            priority_levels=levels,
            default_priority=default_priority,
            queue=queue or QueuePolicy(),
        ),
    )


def rows(events: int, first: float, width: int = 4) -> np.ndarray:
    """``events`` rows numbered from ``first`` (every value of row i is ``first + i``)."""
    column = np.arange(first, first + events, dtype=np.float32)[:, None]
    return np.ascontiguousarray(np.repeat(column, width, axis=1))


def wait_until(predicate: object, timeout: float = 5.0) -> bool:
    """Poll ``predicate`` (a callable) until true or ``timeout`` seconds pass."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return bool(predicate())
