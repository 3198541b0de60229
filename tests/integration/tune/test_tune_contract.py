"""Tune's contract against embedded SQLite, the machine's PostgreSQL, and the REST client
talking to a real server over each of them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from luminary.store import SqlStore, Store
from luminary.testing.tune_contract import TuneContract
from tests.integration.test_store_contract import _rest_over


class TestSqliteTune(TuneContract):
    @pytest.fixture
    def store(self, sqlite_store: SqlStore) -> SqlStore:
        return sqlite_store


@pytest.mark.postgres
class TestPostgresTune(TuneContract):
    @pytest.fixture
    def store(self, postgres_store: SqlStore) -> SqlStore:
        return postgres_store


class TestRestTune(TuneContract):
    """Studies over REST, against a real server over embedded SQLite."""

    @pytest.fixture
    def store(self, sqlite_store: SqlStore, tmp_path: Path) -> Iterator[Store]:
        yield from _rest_over(sqlite_store, tmp_path)


@pytest.mark.postgres
class TestRestOverPostgresTune(TuneContract):
    """Studies over REST, against a real server over PostgreSQL: team mode."""

    @pytest.fixture
    def store(self, postgres_store: SqlStore, tmp_path: Path) -> Iterator[Store]:
        yield from _rest_over(postgres_store, tmp_path)
