"""The Store contract: one suite, run against every implementation.

Subclass :class:`StoreContract` in a test module and provide a ``store`` fixture that yields a
fresh, empty :class:`~luminary.store.Store`::

    class TestSqlite(StoreContract):
        @pytest.fixture
        def store(self, tmp_path): ...

A store whose blobs are not a :class:`~luminary.storage.blobs.BlobStore` (the REST client) also
overrides ``backing_blobs``: the BlobStore behind it, which the corruption test damages.
"""

from __future__ import annotations

import itertools
import math
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from luminary.datasets.models import DatasetVersion
from luminary.errors import (
    AlreadyExistsError,
    IntegrityError,
    InvalidArgumentError,
    InvalidStateError,
    NotFoundError,
)
from luminary.registry.models import ModelVersion
from luminary.storage.blobs import hash_bytes
from luminary.store import ArtifactEntry, BlobStore, ParamValue, RunStatus, Store

__all__ = ["DatasetContract", "RegistryContract", "StoreContract"]


def _sid() -> int:
    return secrets.randbits(62)


class StoreContract:
    @pytest.fixture
    def backing_blobs(self, store: Store) -> BlobStore:
        """The BlobStore that holds ``store``'s bytes (the server's, for a remote store)."""
        assert isinstance(store.blobs, BlobStore)
        return store.blobs

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

    def test_a_repeated_batch_id_stores_the_points_once(self, store: Store) -> None:
        run = store.create_run("p")
        first, second = _sid(), _sid()
        store.write_metrics(run.id, [(first, "loss")], [(first, 0, 1, 1.0)])
        batch = secrets.token_hex(16)
        points = [(second, 1, 2, 2.0), (second, 2, 3, 3.0)]
        remap = store.write_metrics(run.id, [(second, "loss")], points, batch_id=batch)
        assert remap == {"loss": first}
        again = store.write_metrics(run.id, [(second, "loss")], points, batch_id=batch)
        assert again == remap  # the same answer as the first write
        history = store.get_metric_history(run.id, "loss")
        assert history.steps == [0, 1, 2]
        assert store.get_run(run.id).metrics == {"loss": 3.0}
        # another run may use the same id, and a new id writes again
        other = store.create_run("p")
        sid = _sid()
        assert (
            store.write_metrics(other.id, [(sid, "loss")], [(sid, 0, 1, 1.0)], batch_id=batch) == {}
        )
        store.write_metrics(run.id, [], [(first, 3, 4, 4.0)], batch_id=secrets.token_hex(16))
        assert len(store.get_metric_history(run.id, "loss")) == 4
        assert len(store.get_metric_history(other.id, "loss")) == 1

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

    def test_search_within_projects(self, store: Store) -> None:
        a, b = store.create_run("a"), store.create_run("b")
        store.create_run("c")
        found = store.search_runs(None, within=["a", "b", "nowhere"], order_by="start_time asc")
        assert {r.id for r in found} == {a.id, b.id}
        assert store.count_runs(None, within=["b"]) == 1
        assert store.search_runs(None, within=[]) == []
        assert store.count_runs(None, within=[]) == 0
        assert [r.id for r in store.search_runs("a", within=["a"])] == [a.id]
        assert store.search_runs("a", within=["b"]) == []

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

    def test_corrupt_blob_is_reported_not_returned(
        self, store: Store, backing_blobs: BlobStore, tmp_path: Path
    ) -> None:
        blob = store.blobs.put_bytes(b"the real bytes")
        key = backing_blobs.key(blob.digest)
        with backing_blobs.fs.open(key, "wb") as fh:
            fh.write(b"the rea1 bytes")
        with pytest.raises(IntegrityError, match=blob.digest):
            store.blobs.read_bytes(blob.digest)
        dest = tmp_path / "out.bin"
        with pytest.raises(IntegrityError):
            store.blobs.get_file(blob.digest, dest)
        assert not dest.exists()
        assert store.blobs.verify(blob.digest) is False


#: Model files the registry tests register, stored first: a server reads every file it is asked
#: to register (opaque bytes, so there is no format to check).
_FILES = {hash_bytes(data): data for data in (b"weights 1", b"weights 2", b"weights 3")}
_D1, _D2, _D3 = _FILES


def _register(store: Store, name: str = "jet-tagger", **kw: object) -> ModelVersion:
    args: dict[str, Any] = {
        "project": "cms-btag",
        "digest": _D1,
        "size": None,
        "format": "opaque",
        "filename": "model.bin",
        "signature": {"inputs": []},
        "metadata": {},
        "source_run_id": None,
        "parent": None,
        "description": "",
        "actor": "alice@lxplus",
    }
    args.update(kw)
    data = _FILES.get(args["digest"])
    if data is not None:
        store.blobs.put_bytes(data)
    if args["size"] is None:
        args["size"] = 10 if data is None else len(data)
    return store.create_model_version(name, **args)


class RegistryContract:
    def recorded_actor(self, given: str) -> str:
        """The actor a store records for a change made with ``given``: ``given`` itself, except
        through a server, which records the authenticated principal (the harness overrides)."""
        return given

    def test_versions_are_numbered_and_resolved(self, store: Store) -> None:
        run = store.create_run("cms-btag", params={"lr": 0.01})
        sid = _sid()
        store.write_metrics(run.id, [(sid, "val_auc")], [(sid, 0, 1, 0.93)])
        v1 = _register(store, source_run_id=run.id)
        v2 = _register(store, digest=_D2)
        assert (v1.version, v2.version) == (1, 2)
        assert v1.ref == "jet-tagger@1"
        assert v1.metrics == {"val_auc": 0.93}
        assert v1.source_run_id == run.id
        assert store.get_model_version("jet-tagger@1").digest == _D1
        assert store.get_model_version("jet-tagger").version == 2
        assert store.get_model_version("jet-tagger@latest").version == 2
        model = store.get_model("jet-tagger")
        assert model.project == "cms-btag"
        assert model.latest_version == 2
        assert [v.version for v in store.list_model_versions("jet-tagger")] == [1, 2]
        assert [v.version for v in store.versions_from_run(run.id)] == [1]

    def test_aliases_move_atomically_with_history(self, store: Store) -> None:
        _register(store)
        _register(store, digest=_D2)
        store.set_alias("jet-tagger", "production", 1, "alice")
        assert store.get_model_version("jet-tagger@production").version == 1
        store.set_alias("jet-tagger", "production", 2, "bob")
        store.set_alias("jet-tagger", "staging", 1, "bob")
        assert store.get_model_version("jet-tagger@production").version == 2
        assert store.get_model("jet-tagger").aliases == {"production": 2, "staging": 1}
        assert store.get_model_version("jet-tagger@1").aliases == ("staging",)
        store.unset_alias("jet-tagger", "staging", "carol")
        moves = store.alias_history("jet-tagger")
        alice, bob, carol = (self.recorded_actor(a) for a in ("alice", "bob", "carol"))
        assert [(m.alias, m.from_version, m.to_version, m.actor) for m in moves] == [
            ("production", None, 1, alice),
            ("production", 1, 2, bob),
            ("staging", None, 1, bob),
            ("staging", 1, None, carol),
        ]
        assert [m.to_version for m in store.alias_history("jet-tagger", "production")] == [1, 2]

    def test_unknown_names_suggest_the_nearest(self, store: Store) -> None:
        _register(store)
        store.set_alias("jet-tagger", "production", 1, "a")
        with pytest.raises(NotFoundError, match="did you mean 'jet-tagger'"):
            store.get_model_version("jet-taggr@1")
        with pytest.raises(NotFoundError, match="did you mean 'production'"):
            store.get_model_version("jet-tagger@productoin")
        with pytest.raises(NotFoundError, match="versions: 1"):
            store.get_model_version("jet-tagger@7")
        with pytest.raises(NotFoundError):
            store.set_alias("jet-tagger", "staging", 9, "a")

    @pytest.mark.parametrize("ref", ["", "bad name@1", "x@0", "x@-1", "x@has space", "@3"])
    def test_bad_references_are_invalid(self, store: Store, ref: str) -> None:
        with pytest.raises(InvalidArgumentError):
            store.get_model_version(ref)

    def test_derived_versions_point_to_their_parent(self, store: Store) -> None:
        _register(store)
        child = _register(store, "jet-tagger-int8", parent="jet-tagger@1", digest=_D2)
        assert child.parent == "jet-tagger@1"
        assert [v.ref for v in store.derived_versions("jet-tagger@1")] == ["jet-tagger-int8@1"]

    def test_a_version_an_alias_points_to_cannot_be_deleted(self, store: Store) -> None:
        _register(store)
        _register(store, digest=_D2)
        store.set_alias("jet-tagger", "production", 1, "a")
        with pytest.raises(InvalidStateError, match="production"):
            store.delete_model_version("jet-tagger@1", "a")
        store.delete_model_version("jet-tagger@2", "a")
        assert [v.version for v in store.list_model_versions("jet-tagger")] == [1]
        store.delete_model("jet-tagger", "a")
        with pytest.raises(NotFoundError):
            store.get_model("jet-tagger")

    def test_event_log_records_every_change_in_order(self, store: Store) -> None:
        _register(store)
        store.set_alias("jet-tagger", "production", 1, "alice")
        store.create_dataset_version(
            "jets",
            project="cms-btag",
            mode="copy",
            root="/data",
            manifest_digest=_D1,
            schema_digest=None,
            file_count=2,
            total_bytes=20,
            message="",
            actor="alice",
        )
        events = store.list_events()
        assert [(e.kind, e.subject) for e in events] == [
            ("model.registered", "jet-tagger@1"),
            ("alias.set", "jet-tagger@production"),
            ("dataset.version", "jets@1"),
        ]
        assert events[1].payload == {
            "model": "jet-tagger",
            "alias": "production",
            "from_version": None,
            "to_version": 1,
        }
        alias_set = store.list_events(after=events[0].seq, kinds=["alias.set"])[0]
        assert alias_set.actor == self.recorded_actor("alice")

    def test_concurrent_alias_moves_all_land_in_history(self, store: Store) -> None:
        for digest in (_D1, _D2, _D3):
            _register(store, digest=digest)
        errors: list[BaseException] = []

        def move(version: int) -> None:
            try:
                for _ in range(5):
                    store.set_alias("jet-tagger", "production", version, f"w{version}")
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=move, args=(v,)) for v in (1, 2, 3)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert errors == []
        moves = store.alias_history("jet-tagger", "production")
        assert len(moves) == 15
        # Each move starts where the previous one ended: the history is a chain.
        for before, after in itertools.pairwise(moves):
            assert after.from_version == before.to_version
        final = store.get_model_version("jet-tagger@production").version
        assert final == moves[-1].to_version


class DatasetContract:
    def _add(self, store: Store, digest: str = _D1, name: str = "jets") -> DatasetVersion:
        return store.create_dataset_version(
            name,
            project="cms-btag",
            mode="copy",
            root="/eos/jets",
            manifest_digest=digest,
            schema_digest=None,
            file_count=3,
            total_bytes=300,
            message="first",
            actor="alice",
        )

    def test_versions_are_numbered_and_resolved(self, store: Store) -> None:
        v1 = self._add(store)
        v2 = self._add(store, _D2)
        assert (v1.ref, v2.ref) == ("jets@1", "jets@2")
        assert store.get_dataset_version("jets@1").manifest_digest == _D1
        assert store.get_dataset_version("jets").version == 2
        assert store.get_dataset("jets").latest_version == 2
        assert [d.name for d in store.list_datasets()] == ["jets"]
        assert [v.version for v in store.list_dataset_versions("jets")] == [1, 2]

    def test_unknown_dataset_and_version(self, store: Store) -> None:
        self._add(store)
        with pytest.raises(NotFoundError, match="did you mean 'jets'"):
            store.get_dataset_version("jest@1")
        with pytest.raises(NotFoundError, match="versions: 1"):
            store.get_dataset_version("jets@4")
        with pytest.raises(InvalidArgumentError, match="not aliases"):
            store.get_dataset_version("jets@production")

    def test_run_inputs_link_runs_and_versions(self, store: Store) -> None:
        v1 = self._add(store)
        run = store.create_run("cms-btag")
        store.add_run_inputs(run.id, [v1.id, v1.id])
        store.add_run_inputs(run.id, [v1.id])
        assert [v.ref for v in store.run_inputs(run.id)] == ["jets@1"]
        assert store.runs_using("jets@1") == [run.id]

    def test_bad_mode_and_digest_are_rejected(self, store: Store) -> None:
        with pytest.raises(InvalidArgumentError, match="mode"):
            store.create_dataset_version(
                "jets",
                project="p",
                mode="move",  # type: ignore[arg-type]
                root="/x",
                manifest_digest=_D1,
                schema_digest=None,
                file_count=0,
                total_bytes=0,
                message="",
                actor="a",
            )
        with pytest.raises(InvalidArgumentError, match="digest"):
            self._add(store, "../../etc/passwd")
