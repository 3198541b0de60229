"""Per-model-version statistics: the protocol's statistics extension and the metrics' source.

Updated once per executed batch under a lock (never per tensor), read by the statistics
endpoints and by the Prometheus collector at scrape time.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from luminary._clock import now_ms
from luminary.serving._batcher import BatchTimings


@dataclass
class Duration:
    count: int = 0
    ns: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass
class BatchStat:
    count: int = 0
    input_ns: int = 0
    infer_ns: int = 0
    output_ns: int = 0


@dataclass
class ModelStats:
    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)
    inference_count: int = 0
    execution_count: int = 0
    last_inference_ms: int = 0
    batches: dict[int, BatchStat] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def observe(self, t: BatchTimings | None, failed: int) -> None:
        """The batcher's observer: one executed batch, or ``failed`` requests."""
        with self._lock:
            self.last_inference_ms = now_ms()
            if failed:
                self.fail.count += failed
            if t is None:
                return
            n = t.requests
            self.success.count += n
            self.success.ns += t.request_ns
            self.queue.count += n
            self.queue.ns += t.queue_ns
            self.compute_input.count += n
            self.compute_input.ns += t.input_ns * n
            self.compute_infer.count += n
            self.compute_infer.ns += t.infer_ns * n
            self.compute_output.count += n
            self.compute_output.ns += t.output_ns * n
            self.inference_count += t.events
            self.execution_count += 1
            b = self.batches.get(t.events)
            if b is None:
                b = self.batches[t.events] = BatchStat()
            b.count += 1
            b.input_ns += t.input_ns
            b.infer_ns += t.infer_ns
            b.output_ns += t.output_ns

    def failed(self, requests: int = 1, ns: int = 0) -> None:
        """A request rejected before it reached the batcher (bad input, overload)."""
        with self._lock:
            self.fail.count += requests
            self.fail.ns += ns

    def to_dict(self, name: str, version: str) -> dict[str, Any]:
        """The statistics extension's JSON for this version (also the gRPC message's shape)."""
        with self._lock:
            return {
                "name": name,
                "version": version,
                "last_inference": self.last_inference_ms,
                "inference_count": self.inference_count,
                "execution_count": self.execution_count,
                "inference_stats": {
                    "success": self.success.to_dict(),
                    "fail": self.fail.to_dict(),
                    "queue": self.queue.to_dict(),
                    "compute_input": self.compute_input.to_dict(),
                    "compute_infer": self.compute_infer.to_dict(),
                    "compute_output": self.compute_output.to_dict(),
                    "cache_hit": {"count": 0, "ns": 0},
                    "cache_miss": {"count": 0, "ns": 0},
                },
                "batch_stats": [
                    {
                        "batch_size": size,
                        "compute_input": {"count": b.count, "ns": b.input_ns},
                        "compute_infer": {"count": b.count, "ns": b.infer_ns},
                        "compute_output": {"count": b.count, "ns": b.output_ns},
                    }
                    for size, b in sorted(self.batches.items())
                ],
            }
