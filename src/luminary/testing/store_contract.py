"""The Store contract: one suite, run against every implementation.

Subclass :class:`StoreContract` in a test module and provide a ``store`` fixture that yields a
fresh, empty :class:`~luminary.store.Store`::

    class TestSqlite(StoreContract):
        @pytest.fixture
        def store(self, tmp_path): ...
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from pathlib import Path

import pytest

from luminary.errors import (
    AlreadyExistsError,
    IntegrityError,
    InvalidArgumentError,
    NotFoundError,
)
from luminary.store import ArtifactEntry, ParamValue, RunStatus, Store

__all__ = ["StoreContract"]


def _sid() -> int:
    return secrets.randbits(62)


class StoreContract:
    # -- projects --------------------------------------------------------------------------
    def test_project_round_trip(self, store: Store) -> None:
        made = store.create_project("cms-btag", "b-tagging")
        got = store.get_project("cms-btag")
        assert got == made
        assert got.description == "b-tagging"
        assert [p.name for p in store.list_projects()] == ["cms-btag"]

    def test_duplicate_project_is_rejected(self, store: Store) -> None:
        store.create_project("atlas-gn2")
        with pytest.raises(AlreadyExistsError, match="atlas-gn2"):
            store.create_project("atlas-gn2")

    def test_unknown_project_suggests_the_nearest_name(self, store: Store) -> None:
        store.create_project("jet-tagger")
        with pytest.raises(NotFoundError, match="did you mean 'jet-tagger'"):
            store.get_project("jet-taggr")

    @pytest.mark.parametrize("name", ["", "has space", "../up", "-dash", "x" * 201])
    def test_invalid_project_name_says_what_is_valid(self, store: Store, name: str) -> None:
        with pytest.raises(InvalidArgumentError, match="project name"):
            store.create_project(name)

    # -- runs ------------------------------------------------------------------------------
    def test_run_round_trip_with_params_and_tags(self, store: Store) -> None:
        params: dict[str, ParamValue] = {
            "lr": 0.001,
            "layers": 3,
            "opt": "adam",
            "bn": True,
            "none": None,
            "sizes": [64, 64],
        }
        run = store.create_run("p", name="first", params=params, tags={"stage": "dev"})
        got = store.get_run(run.id)
        assert got.name == "first"
        assert got.project == "p"
        assert got.status is RunStatus.RUNNING
        assert dict(got.params) == params
        assert type(got.params["layers"]) is int
        assert dict(got.tags) == {"stage": "dev"}
        assert got.end_time is None

    def test_run_found_by_unique_prefix(self, store: Store) -> None:
        run = store.create_run("p")
        assert store.get_run(run.id[:12]).id == run.id

    def test_unknown_run_is_not_found(self, store: Store) -> None:
        run = store.create_run("p")
        with pytest.raises(NotFoundError, match="no run") as info:
            store.get_run(run.id[:-1] + ("0" if run.id[-1] != "0" else "1") + "zz")
        assert isinstance(info.value, KeyError)

    def test_param_is_set_once(self, store: Store) -> None:
        run = store.create_run("p", params={"lr": 0.01})
        store.log_params(run.id, {"lr": 0.01, "batch": 32})  # same value again is fine
        with pytest.raises(InvalidArgumentError, match=r"param 'lr'.*0\.01.*0\.02"):
            store.log_params(run.id, {"lr": 0.02})
        assert store.get_run(run.id).params == {"lr": 0.01, "batch": 32}

    def test_tags_are_overwritten(self, store: Store) -> None:
        run = store.create_run("p", tags={"a": "1"})
        store.set_tags(run.id, {"a": "2", "b": "x"})
        assert store.get_run(run.id).tags == {"a": "2", "b": "x"}

    def test_parent_run_is_recorded(self, store: Store) -> None:
        parent = store.create_run("p")
        child = store.create_run("p", parent_id=parent.id)
        assert store.get_run(child.id).parent_id == parent.id

    def test_status_transitions_record_the_end(self, store: Store) -> None:
        run = store.create_run("p")
        store.set_run_status(run.id, RunStatus.FINISHED)
        got = store.get_run(run.id)
        assert got.status is RunStatus.FINISHED
        assert got.end_time is not None
        assert got.end_time >= got.start_time

    def test_stale_heartbeat_shows_killed_and_a_beat_revives(self, store: Store) -> None:
        run = store.create_run("p", start_ms=int(time.time() * 1000) - 3_600_000)
        fresh = store.create_run("p")
        assert store.reap_stale_runs() == 1
        assert store.get_run(run.id).status is RunStatus.KILLED
        assert store.get_run(fresh.id).status is RunStatus.RUNNING
        store.heartbeat(run.id, int(time.time() * 1000))
        assert store.get_run(run.id).status is RunStatus.RUNNING

    def test_delete_run_removes_everything(self, store: Store) -> None:
        run = store.create_run("p", params={"a": 1})
        sid = _sid()
        store.write_metrics(run.id, [(sid, "loss")], [(sid, 0, 1, 0.5)])
        store.delete_run(run.id)
        with pytest.raises(NotFoundError):
            store.get_run(run.id)
        assert store.search_runs("p") == []

    # -- metrics ---------------------------------------------------------------------------
    def test_metric_history_keeps_nan_and_infinity(self, store: Store) -> None:
        run = store.create_run("p")
        sid = _sid()
        points = [
            (sid, 0, 10, 1.0),
            (sid, 1, 11, None),
            (sid, 2, 12, math.inf),
            (sid, 3, 13, -math.inf),
        ]
        store.write_metrics(run.id, [(sid, "loss")], points)
        h = store.get_metric_history(run.id, "loss")
        assert h.steps == [0, 1, 2, 3]
        assert h.values[0] == 1.0
        assert math.isnan(h.values[1])
        assert h.values[2] == math.inf
        assert h.values[3] == -math.inf

    def test_latest_value_follows_the_highest_step(self, store: Store) -> None:
        run = store.create_run("p")
        sid = _sid()
        store.write_metrics(run.id, [(sid, "auc")], [(sid, 5, 100, 0.9), (sid, 2, 200, 0.1)])
        store.write_metrics(run.id, [], [(sid, 3, 300, 0.2)])
        assert store.get_run(run.id).metrics == {"auc": 0.9}
        store.write_metrics(run.id, [], [(sid, 6, 50, 0.95)])
        assert store.get_run(run.id).metrics == {"auc": 0.95}

    def test_series_declared_twice_is_remapped(self, store: Store) -> None:
        run = store.create_run("p")
        first, second = _sid(), _sid()
        store.write_metrics(run.id, [(first, "loss")], [(first, 0, 1, 1.0)])
        remap = store.write_metrics(run.id, [(second, "loss")], [(second, 1, 2, 2.0)])
        assert remap == {"loss": first}
        assert store.get_metric_history(run.id, "loss").values == [1.0, 2.0]
        assert store.metric_series(run.id) == {"loss": first}

    def test_unknown_metric_suggests_nearest(self, store: Store) -> None:
        run = store.create_run("p")
        sid = _sid()
        store.write_metrics(run.id, [(sid, "val_loss")], [(sid, 0, 1, 1.0)])
        with pytest.raises(NotFoundError, match="did you mean 'val_loss'"):
            store.get_metric_history(run.id, "val_los")

    def test_bad_metric_key_is_rejected(self, store: Store) -> None:
        run = store.create_run("p")
        sid = _sid()
        with pytest.raises(InvalidArgumentError, match="metric key"):
            store.write_metrics(run.id, [(sid, "loss;drop")], [(sid, 0, 1, 1.0)])

    def test_many_threads_write_without_losing_points(self, store: Store) -> None:
        runs = [store.create_run("p") for _ in range(4)]
        errors: list[BaseException] = []

        def work(run_id: str) -> None:
            try:
                sid = _sid()
                store.write_metrics(run_id, [(sid, "x")], [])
                for batch in range(20):
                    pts = [(sid, batch * 100 + i, 1, float(i)) for i in range(100)]
                    store.write_metrics(run_id, [], pts)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(r.id,)) for r in runs]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert errors == []
        for r in runs:
            assert len(store.get_metric_history(r.id, "x")) == 2000

    # -- search ----------------------------------------------------------------------------
    def test_search_filters_orders_and_limits(self, store: Store) -> None:
        made = []
        for i, (lr, auc) in enumerate([(0.1, 0.95), (0.001, 0.91), (0.005, 0.97), (0.001, 0.5)]):
            run = store.create_run("cms", params={"lr": lr, "opt": "adam" if i % 2 else "sgd"})
            sid = _sid()
            store.write_metrics(run.id, [(sid, "val_auc")], [(sid, 0, 1, auc)])
            made.append(run.id)
        store.create_run("other", params={"lr": 0.001})
        found = store.search_runs(
            "cms", "params.lr < 0.01 and metrics.val_auc > 0.9", "metrics.val_auc desc"
        )
        assert [r.id for r in found] == [made[2], made[1]]
        assert [r.id for r in store.search_runs("cms", "params.opt = 'adam'", limit=1)] == [made[3]]
        assert store.count_runs("cms", "params.lr < 0.01") == 3
        assert store.count_runs(None) == 5

    def test_search_in_unknown_project_is_not_found(self, store: Store) -> None:
        store.create_project("cms-btag")
        with pytest.raises(NotFoundError, match="cms-btag"):
            store.search_runs("cms-btg")

    # -- artifacts, environment, blobs -----------------------------------------------------
    def test_artifacts_manifest(self, store: Store, tmp_path: Path) -> None:
        run = store.create_run("p")
        f = tmp_path / "w.bin"
        f.write_bytes(b"weights")
        blob = store.blobs.put_file(f)
        entries = [
            ArtifactEntry("model/w.bin", blob.digest, blob.size),
            ArtifactEntry("model/cfg.json", blob.digest, blob.size),
            ArtifactEntry("plot.png", blob.digest, blob.size),
        ]
        store.add_artifacts(run.id, entries)
        assert [e.path for e in store.list_artifacts(run.id)] == [
            "model/cfg.json",
            "model/w.bin",
            "plot.png",
        ]
        assert [e.path for e in store.list_artifacts(run.id, "model")] == [
            "model/cfg.json",
            "model/w.bin",
        ]
        assert store.blobs.read_bytes(blob.digest) == b"weights"

    @pytest.mark.parametrize("bad", ["../etc/passwd", "/abs", "a/../../b", "a//b", "a\\b", ""])
    def test_artifact_path_traversal_is_rejected(self, store: Store, bad: str) -> None:
        run = store.create_run("p")
        with pytest.raises(InvalidArgumentError, match="artifact path"):
            store.add_artifacts(run.id, [ArtifactEntry(bad, "0" * 64, 1)])

    def test_environment_round_trip(self, store: Store) -> None:
        run = store.create_run("p")
        env = {"python": {"version": "3.11"}, "git": {"commit": "abc", "dirty": True}}
        store.set_environment(run.id, env)
        assert store.get_environment(run.id) == env

    def test_corrupt_blob_is_reported_not_returned(self, store: Store, tmp_path: Path) -> None:
        blob = store.blobs.put_bytes(b"the real bytes")
        key = store.blobs.key(blob.digest)
        with store.blobs.fs.open(key, "wb") as fh:
            fh.write(b"the rea1 bytes")
        with pytest.raises(IntegrityError, match=blob.digest):
            store.blobs.read_bytes(blob.digest)
        dest = tmp_path / "out.bin"
        with pytest.raises(IntegrityError):
            store.blobs.get_file(blob.digest, dest)
        assert not dest.exists()
        assert store.blobs.verify(blob.digest) is False
