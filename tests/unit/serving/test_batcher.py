"""The dynamic batcher with a scripted backend (exact batch shapes) and a real ONNX MLP."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from luminary.serving._batcher import Batcher, BatchTimings, Pending
from luminary.serving._config import build_spec
from luminary.serving._errors import ModelExecutionError, RetiredError, UnavailableError
from luminary.serving._types import QueuePolicy
from luminary.serving.backends import BackendOptions, OnnxRuntimeBackend
from tests.unit.serving._fakes import RecordingBackend, rows, spec, wait_until
from tests.unit.serving.conftest import MakeBatcher

WAIT = 5.0


def submit(batcher: Batcher, x: np.ndarray, priority: int = 0, timeout_us: int = 0) -> Pending:
    p = Pending({"x": x}, len(x), priority=priority, timeout_us=timeout_us)
    batcher.submit(p)
    return p


def result(p: Pending) -> np.ndarray:
    assert p.wait(WAIT), "the request never completed"
    assert p.error is None, p.error
    assert p.result is not None
    return p.result["y"]


def busy(backend: RecordingBackend, batcher: Batcher) -> Pending:
    """Occupy the worker with a one-event batch that runs until ``backend.hold`` is set."""
    p = submit(batcher, rows(1, -100.0))
    assert backend.started.wait(WAIT)
    return p


def test_requests_are_merged_into_one_batch_and_each_gets_its_own_rows(
    make_batcher: MakeBatcher,
) -> None:
    backend = RecordingBackend(hold=True)
    batcher = make_batcher(spec(max_batch=8), [backend])
    busy(backend, batcher)
    inputs = [rows(2, 0), rows(3, 10), rows(1, 20)]
    pending = [submit(batcher, x) for x in inputs]
    backend.hold.set()
    for x, p in zip(inputs, pending, strict=True):
        np.testing.assert_array_equal(result(p), x * 2 + 1)
    assert backend.batch_rows == [1, 6]
    np.testing.assert_array_equal(backend.batches[1], np.concatenate(inputs))


def test_a_batch_never_exceeds_max_batch_size(make_batcher: MakeBatcher) -> None:
    backend = RecordingBackend(hold=True)
    batcher = make_batcher(spec(max_batch=4), [backend])
    busy(backend, batcher)
    pending = [submit(batcher, rows(1, i)) for i in range(10)]
    pending += [submit(batcher, rows(3, 100)), submit(batcher, rows(3, 200))]
    backend.hold.set()
    for i, p in enumerate(pending[:10]):
        np.testing.assert_array_equal(result(p), rows(1, i) * 2 + 1)
    for p, first in zip(pending[10:], (100, 200), strict=True):
        np.testing.assert_array_equal(result(p), rows(3, first) * 2 + 1)
    # 10 single events in fours, then two requests of 3 that cannot share a batch of 4
    assert backend.batch_rows == [1, 4, 4, 2, 3, 3]


def test_max_queue_delay_holds_the_first_request_for_a_later_one(
    make_batcher: MakeBatcher,
) -> None:
    backend = RecordingBackend()
    batcher = make_batcher(spec(max_batch=8, delay_us=400_000), [backend])
    first = submit(batcher, rows(1, 0))
    time.sleep(0.05)
    second = submit(batcher, rows(2, 1))
    np.testing.assert_array_equal(result(first), rows(1, 0) * 2 + 1)
    np.testing.assert_array_equal(result(second), rows(2, 1) * 2 + 1)
    assert backend.batch_rows == [3]


def test_concurrent_clients_share_executions_within_the_queue_delay(
    make_batcher: MakeBatcher,
) -> None:
    backend = RecordingBackend()
    batcher = make_batcher(spec(max_batch=64, delay_us=300_000), [backend])
    clients = 8
    barrier = threading.Barrier(clients)
    outcomes: dict[int, np.ndarray] = {}

    def client(i: int) -> None:
        barrier.wait(WAIT)
        outcomes[i] = result(submit(batcher, rows(2, 10 * i)))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert sorted(outcomes) == list(range(clients))
    for i, y in outcomes.items():
        np.testing.assert_array_equal(y, rows(2, 10 * i) * 2 + 1)
    assert len(backend.batches) < clients
    assert sum(backend.batch_rows) == 2 * clients


def test_a_full_batch_runs_without_waiting_out_the_delay(make_batcher: MakeBatcher) -> None:
    backend = RecordingBackend()
    batcher = make_batcher(spec(max_batch=3, delay_us=60_000_000), [backend])
    pending = [submit(batcher, rows(1, i)) for i in range(3)]
    for p in pending:
        assert p.wait(WAIT)
    assert backend.batch_rows == [3]


def test_reaching_a_preferred_batch_size_ends_the_delay(make_batcher: MakeBatcher) -> None:
    backend = RecordingBackend()
    batcher = make_batcher(spec(max_batch=16, delay_us=60_000_000, preferred=(4,)), [backend])
    pending = [submit(batcher, rows(1, i)) for i in range(4)]
    for p in pending:
        assert p.wait(WAIT)
    assert backend.batch_rows == [4]


def test_batches_are_cut_at_the_largest_preferred_size_that_fits(
    make_batcher: MakeBatcher,
) -> None:
    backend = RecordingBackend(hold=True)
    batcher = make_batcher(spec(max_batch=16, preferred=(2, 4)), [backend])
    busy(backend, batcher)
    pending = [submit(batcher, rows(1, i)) for i in range(7)]
    backend.hold.set()
    for i, p in enumerate(pending):
        np.testing.assert_array_equal(result(p), rows(1, i) * 2 + 1)
    # 7 queued: 4 (largest preferred ≤ 7), then 2 (largest ≤ 3), then the last one
    assert backend.batch_rows == [1, 4, 2, 1]


def test_a_high_priority_request_overtakes_queued_low_priority_ones(
    make_batcher: MakeBatcher,
) -> None:
    backend = RecordingBackend(hold=True)
    batcher = make_batcher(spec(max_batch=1, levels=2, default_priority=2), [backend])
    busy(backend, batcher)
    low = [submit(batcher, rows(1, i)) for i in (1, 2)]  # priority 0: the default, level 2
    high = submit(batcher, rows(1, 99), priority=1)
    backend.hold.set()
    for p in [*low, high]:
        result(p)
    assert [float(b[0, 0]) for b in backend.batches] == [-100.0, 99.0, 1.0, 2.0]


def test_a_request_past_its_timeout_fails_unavailable_and_the_others_still_run(
    make_batcher: MakeBatcher,
) -> None:
    observed: list[tuple[BatchTimings | None, int]] = []
    backend = RecordingBackend(hold=True)
    batcher = make_batcher(spec(max_batch=8), [backend], lambda t, f: observed.append((t, f)))
    busy(backend, batcher)
    doomed = submit(batcher, rows(1, 1), timeout_us=10_000)
    patient = submit(batcher, rows(1, 2))
    time.sleep(0.05)
    backend.hold.set()
    assert doomed.wait(WAIT)
    assert isinstance(doomed.error, UnavailableError)
    assert "timed out" in str(doomed.error)
    assert doomed.result is None
    np.testing.assert_array_equal(result(patient), rows(1, 2) * 2 + 1)
    assert [float(b[0, 0]) for b in backend.batches] == [-100.0, 2.0]
    assert wait_until(lambda: len(observed) == 3)
    assert (None, 1) in observed


def test_a_full_queue_refuses_at_once(make_batcher: MakeBatcher) -> None:
    backend = RecordingBackend(hold=True)
    batcher = make_batcher(spec(queue=QueuePolicy(max_queue_size=2)), [backend])
    busy(backend, batcher)  # taken off the queue: it does not count
    queued = [submit(batcher, rows(1, i)) for i in range(2)]
    assert batcher.queued == 2
    started = time.monotonic()
    with pytest.raises(UnavailableError, match=r"max_queue_size 2"):
        submit(batcher, rows(1, 3))
    assert time.monotonic() - started < 1.0
    backend.hold.set()
    for p in queued:
        result(p)
    assert batcher.queued == 0
    result(submit(batcher, rows(1, 4)))  # room again


def test_a_backend_error_fails_only_its_batch(make_batcher: MakeBatcher) -> None:
    observed: list[tuple[BatchTimings | None, int]] = []
    backend = RecordingBackend(hold=True, fail_on=-1.0)
    batcher = make_batcher(spec(max_batch=8), [backend], lambda t, f: observed.append((t, f)))
    busy(backend, batcher)
    bad = [submit(batcher, rows(1, -1)), submit(batcher, rows(1, 5))]  # merged: both fail
    backend.hold.set()
    for p in bad:
        assert p.wait(WAIT)
        assert isinstance(p.error, ModelExecutionError)
        assert str(p.error) == "model 'fake' failed to run: kernel exploded"
    good = submit(batcher, rows(2, 7))
    np.testing.assert_array_equal(result(good), rows(2, 7) * 2 + 1)
    assert wait_until(lambda: len(observed) == 3)
    assert observed[1] == (None, 2)
    timings = observed[2][0]
    assert timings is not None
    assert (timings.requests, timings.events) == (1, 2)


def test_close_finishes_queued_requests_then_refuses_new_ones(
    make_batcher: MakeBatcher,
) -> None:
    backend = RecordingBackend(hold=True)
    batcher = make_batcher(spec(max_batch=2, delay_us=60_000_000), [backend])
    first = submit(batcher, rows(2, 0))  # a full batch: runs, and holds the worker
    assert backend.started.wait(WAIT)
    queued = [submit(batcher, rows(1, i)) for i in range(10, 13)]
    closer = threading.Thread(target=batcher.close)
    closer.start()
    assert wait_until(lambda: batcher._closed)
    with pytest.raises(RetiredError):
        submit(batcher, rows(1, 50))
    backend.hold.set()
    closer.join(WAIT)
    assert not closer.is_alive()
    np.testing.assert_array_equal(result(first), rows(2, 0) * 2 + 1)
    for i, p in zip(range(10, 13), queued, strict=True):
        np.testing.assert_array_equal(result(p), rows(1, i) * 2 + 1)
    # the delay is not waited out once closed
    assert backend.batch_rows == [2, 2, 1]
    assert backend.closed


def test_close_without_waiting_still_runs_the_queued_requests(
    make_batcher: MakeBatcher,
) -> None:
    """What a hot swap does to the old version: its queue drains on a live backend."""
    backend = RecordingBackend(hold=True)
    batcher = make_batcher(spec(max_batch=1), [backend])
    first = busy(backend, batcher)
    queued = [submit(batcher, rows(1, i)) for i in range(3)]
    batcher.close(wait=False)
    backend.hold.set()
    result(first)
    for i, p in enumerate(queued):
        np.testing.assert_array_equal(result(p), rows(1, i) * 2 + 1)
    assert wait_until(lambda: backend.closed)


def test_requests_with_different_event_shapes_are_not_concatenated(
    make_batcher: MakeBatcher,
) -> None:
    backend = RecordingBackend(hold=True)
    batcher = make_batcher(spec(max_batch=8, dims=(-1,)), [backend])
    busy(backend, batcher)
    inputs = [rows(1, 0, width=4), rows(2, 1, width=3), rows(1, 3, width=4), rows(1, 4, width=4)]
    pending = [submit(batcher, x) for x in inputs]
    backend.hold.set()
    for x, p in zip(inputs, pending, strict=True):
        np.testing.assert_array_equal(result(p), x * 2 + 1)
    # arrival order kept: the width-4 requests after the width-3 one batch together
    assert [b.shape for b in backend.batches] == [(1, 4), (1, 4), (2, 3), (2, 4)]


def test_an_asyncio_request_completes_its_future(make_batcher: MakeBatcher) -> None:
    backend = RecordingBackend()
    batcher = make_batcher(spec(max_batch=8, delay_us=50_000), [backend])

    async def infer() -> list[np.ndarray]:
        loop = asyncio.get_running_loop()
        pending = [Pending({"x": rows(2, 10 * i)}, 2, loop=loop) for i in range(3)]
        futures = []
        for p in pending:
            assert p.lock is None
            assert p.future is not None
            futures.append(p.future)
            batcher.submit(p)
        await asyncio.wait_for(asyncio.gather(*futures), WAIT)
        outs = []
        for p in pending:
            assert p.error is None
            assert p.result is not None
            outs.append(p.result["y"])
        return outs

    outs = asyncio.run(infer())
    for i, y in enumerate(outs):
        np.testing.assert_array_equal(y, rows(2, 10 * i) * 2 + 1)
    assert backend.batch_rows == [6]


def test_a_real_onnx_model_answers_each_request_as_if_run_alone(
    make_batcher: MakeBatcher, mlp_models: dict[str, Path]
) -> None:
    backend = OnnxRuntimeBackend.load(mlp_models["five"], BackendOptions())
    reference = OnnxRuntimeBackend.load(mlp_models["five"], BackendOptions())
    model = build_spec(
        "mlp", "1", "onnxruntime", "onnxruntime_onnx", backend.inputs, backend.outputs
    )
    model = dataclasses.replace(model, batching=spec(delay_us=200_000).batching)
    observed: list[BatchTimings | None] = []
    batcher = make_batcher(model, [backend], lambda t, f: observed.append(t))
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((n, 16)).astype(np.float32) for n in (3, 1, 5)]
    pending = [Pending({"x": x}, len(x)) for x in inputs]
    for p in pending:
        batcher.submit(p)
    for x, p in zip(inputs, pending, strict=True):
        assert p.wait(WAIT)
        assert p.error is None
        assert p.result is not None
        got = p.result["probabilities"]
        assert got.shape == (len(x), 5)
        want = reference.run({"x": x}, ["probabilities"])[0]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert len(observed) == 1
    assert observed[0] is not None
    assert (observed[0].requests, observed[0].events) == (3, 9)


def test_a_failing_statistics_observer_never_leaves_requests_waiting(
    make_batcher: MakeBatcher, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(timings: BatchTimings | None, failed: int) -> None:
        raise RuntimeError("statistics bug")

    batcher = make_batcher(spec(), [RecordingBackend()], broken)
    for _ in range(3):  # the worker survives: later requests are answered too
        p = Pending({"x": rows(2, 0.0)}, 2)
        batcher.submit(p)
        assert p.wait(5.0)
        assert p.error is None
        assert p.result is not None
    assert "statistics of model 'fake' failed" in caplog.text
