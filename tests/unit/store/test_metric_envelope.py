"""A long series reduced in the database: per-bucket minimum and maximum, in step order."""

from __future__ import annotations

import secrets

from luminary.store import SqlStore


def test_buckets_keep_each_minimum_and_maximum(sqlite_store: SqlStore) -> None:
    sqlite_store.ensure_project("p")
    run = sqlite_store.create_run("p")
    sid = secrets.randbits(62)
    values = [float(i % 7) for i in range(10_000)]
    values[4_321] = 100.0  # a spike inside bucket 4
    values[8_765] = -50.0  # a dip inside bucket 8
    points = [(sid, i, 0, v) for i, v in enumerate(values)]
    sqlite_store.write_metrics(run.id, [(sid, "loss")], points)
    reduced = sqlite_store.metric_envelope(run.id, "loss", 10)
    assert reduced is not None
    total, rows = reduced
    assert total == 10_000
    assert len(rows) == 10
    assert [r[0] for r in rows] == [b * 1_000 for b in range(10)]  # first step of each bucket
    assert [r[1] for r in rows] == [b * 1_000 + 999 for b in range(10)]
    assert rows[4][3] == 100.0
    assert rows[8][2] == -50.0
    assert max(r[3] for r in rows) == 100.0
    assert sqlite_store.metric_envelope(run.id, "missing", 10) is None
