"""Bad input, through every Store: numbers past the database's integers, searches past the
filter limits and artifact manifests that do not match the blob store.

Each is refused with :class:`~luminary.errors.InvalidArgumentError` (HTTP 400 through the REST
client) whose message names the field and the limit; none may reach the database as a driver
error (HTTP 500). Subclass :class:`BadInputContract` with a ``store`` fixture, as
:class:`~luminary.testing.store_contract.StoreContract`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from luminary.errors import InvalidArgumentError
from luminary.store import ArtifactEntry, RunStatus, Store

__all__ = ["BadInputContract"]

_TOO_BIG = 2**64
_INT64_MAX = str(2**63 - 1)
_ABSENT = "ab" * 32  # a well-formed digest of no stored blob

_Call = Callable[[Store, str], Any]


def _metric(step: int, ts: int) -> _Call:
    def call(store: Store, run_id: str) -> Any:
        return store.write_metrics(run_id, [(1, "loss")], [(1, step, ts, 0.5)])

    return call


_BIG_INTEGERS: dict[str, tuple[_Call, str]] = {
    "start_ms": (lambda s, r: s.create_run("p", start_ms=_TOO_BIG), _INT64_MAX),
    "end_ms": (lambda s, r: s.set_run_status(r, RunStatus.FINISHED, _TOO_BIG), _INT64_MAX),
    "heartbeat": (lambda s, r: s.heartbeat(r, _TOO_BIG), _INT64_MAX),
    "metric step": (_metric(_TOO_BIG, 0), _INT64_MAX),
    "metric timestamp": (_metric(0, -_TOO_BIG), _INT64_MAX),
    "search limit": (lambda s, r: s.search_runs("p", limit=_TOO_BIG), _INT64_MAX),
    "search offset": (lambda s, r: s.search_runs("p", offset=_TOO_BIG), _INT64_MAX),
    "negative limit": (lambda s, r: s.search_runs("p", limit=-1), "from 0"),
    "huge param": (lambda s, r: s.log_params(r, {"n": 10**400}), "1000 bits"),
    "model version": (lambda s, r: s.get_model_version(f"m@{_TOO_BIG}"), "2147483647"),
    "events after": (lambda s, r: s.list_events(after=_TOO_BIG), _INT64_MAX),
    "events limit": (lambda s, r: s.list_events(limit=_TOO_BIG), _INT64_MAX),
}

_KEYS = " and ".join(f"params.k{i} = 1" for i in range(40))
_FILTERS: dict[str, tuple[str, str]] = {
    "terms": (" or ".join(f"params.k = {i}" for i in range(300)), "more than 200 comparisons"),
    "keys": (_KEYS, "at most 32"),
    "in list": ("params.k in (" + ",".join(map(str, range(1500))) + ")", "at most 1000 values"),
    "length": ("params.k = '" + "x" * 30_000 + "'", "limit of 20000"),
    "depth": ("(" * 40 + "params.k = 1" + ")" * 40, "more than 24 levels"),
    "big literal": ("start_time > " + "9" * 5000, ""),
}


class BadInputContract:
    @pytest.mark.parametrize("case", sorted(_BIG_INTEGERS))
    def test_an_integer_past_64_bits_is_refused_with_the_range(
        self, store: Store, case: str
    ) -> None:
        run = store.create_run("p")
        call, limit = _BIG_INTEGERS[case]
        with pytest.raises(InvalidArgumentError, match=limit):
            call(store, run.id)
        assert store.get_run(run.id).status == RunStatus.RUNNING  # and the store still works

    @pytest.mark.parametrize("case", sorted(_FILTERS))
    def test_a_search_past_the_filter_limits_is_refused_with_the_limit(
        self, store: Store, case: str
    ) -> None:
        store.create_run("p", params={"k": 1})
        text, limit = _FILTERS[case]
        if not limit:  # a literal past every integer is a number like any other
            assert store.search_runs("p", filter=text) == []
            return
        with pytest.raises(InvalidArgumentError, match=limit):
            store.search_runs("p", filter=text)

    def test_an_order_by_past_the_key_limit_is_refused(self, store: Store) -> None:
        store.create_run("p")
        order = [f"metrics.m{i} desc" for i in range(40)]
        with pytest.raises(InvalidArgumentError, match="at most 32"):
            store.search_runs("p", order_by=order)

    def test_a_search_at_the_limits_runs(self, store: Store) -> None:
        run = store.create_run("p", params={"k0": 1})
        terms = " or ".join(f"params.k{i % 32} != {i}" for i in range(190))
        nested = "params.k0 = 1"
        for i in range(5):  # 20 levels of "not" and parentheses, within MAX_DEPTH
            nested = f"not (not ({nested}) or params.k{i} = 'x')"
        found = store.search_runs("p", filter=f"({terms}) and {nested}", limit=10)
        assert [r.id for r in found] == [run.id]

    # -- artifact manifests ----------------------------------------------------------------
    def _blob(self, store: Store, tmp_path: Path) -> tuple[str, int]:
        f = tmp_path / "w.bin"
        f.write_bytes(b"weights")
        blob = store.blobs.put_file(f)
        return blob.digest, blob.size

    @pytest.mark.parametrize(
        ("path", "digest", "size", "reason"),
        [
            ("w.bin", _ABSENT, 7, "not in the blob store"),
            ("w.bin", None, -1, "from 0"),
            ("w.bin", None, 8, "holds 7"),
            ("w.bin", None, _TOO_BIG, _INT64_MAX),
            ("logs/a\nb.txt", None, 7, "control character"),
            ("a\x1b[2Jb", None, 7, "control character"),
            ("d/" + "x" * 256, None, 7, "256 bytes long"),
            ("é" * 200, None, 7, "400 bytes long"),
            ("/".join(["abcdefghij" * 10] * 11), None, 7, "1110 bytes long"),
            ("bad\udcff.bin", None, 7, "valid Unicode"),
            ("a/./b", None, 7, "'.'"),
        ],
    )
    def test_a_bad_artifact_manifest_is_refused_on_write(
        self,
        store: Store,
        tmp_path: Path,
        path: str,
        digest: str | None,
        size: int,
        reason: str,
    ) -> None:
        run = store.create_run("p")
        real, _ = self._blob(store, tmp_path)
        good = ArtifactEntry("good.bin", real, 7)
        with pytest.raises(InvalidArgumentError, match=reason):
            store.add_artifacts(run.id, [good, ArtifactEntry(path, digest or real, size)])
        assert store.list_artifacts(run.id) == []  # nothing of the refused manifest is kept
