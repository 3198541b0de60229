"""The Store contract against embedded SQLite, the machine's PostgreSQL, and the REST client
talking to a real server over each of them (team mode runs on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from luminary._actor import current_actor
from luminary.store import BlobStore, SqlStore, Store
from luminary.testing.compute_contract import ComputeContract
from luminary.testing.input_contract import BadInputContract
from luminary.testing.store_contract import DatasetContract, RegistryContract, StoreContract
from tests.integration.luminary_server import serve_in_thread


class TestSqliteStore(StoreContract, RegistryContract, DatasetContract, BadInputContract):
    @pytest.fixture
    def store(self, sqlite_store: SqlStore) -> SqlStore:
        return sqlite_store


@pytest.mark.postgres
class TestPostgresStore(StoreContract, RegistryContract, DatasetContract, BadInputContract):
    @pytest.fixture
    def store(self, postgres_store: SqlStore) -> SqlStore:
        return postgres_store


def _rest_over(backing: SqlStore, tmp_path: Path) -> Iterator[Store]:
    from luminary.store._rest import RestStore

    with serve_in_thread(backing, tmp_path / "spool", auth=False) as url:
        rest = RestStore(url, cache_dir=str(tmp_path / "cache"))
        yield rest
        rest.close()


def _blobs_of(backing: SqlStore) -> BlobStore:
    assert isinstance(backing.blobs, BlobStore)
    return backing.blobs


class TestRestStore(StoreContract, RegistryContract, DatasetContract, BadInputContract):
    """The REST client against a real server (uvicorn on a free port) over embedded SQLite."""

    @pytest.fixture
    def store(self, sqlite_store: SqlStore, tmp_path: Path) -> Iterator[Store]:
        yield from _rest_over(sqlite_store, tmp_path)

    def recorded_actor(self, given: str) -> str:
        # the server records who is authenticated (here, without tokens: its own user)
        return current_actor()

    @pytest.fixture
    def backing_blobs(self, sqlite_store: SqlStore) -> BlobStore:
        return _blobs_of(sqlite_store)


@pytest.mark.postgres
class TestRestOverPostgresStore(StoreContract, RegistryContract, DatasetContract, BadInputContract):
    """The REST client against a real server whose store is PostgreSQL: team mode."""

    @pytest.fixture
    def store(self, postgres_store: SqlStore, tmp_path: Path) -> Iterator[Store]:
        yield from _rest_over(postgres_store, tmp_path)

    def recorded_actor(self, given: str) -> str:
        return current_actor()  # the server's own user, as in TestRestStore

    @pytest.fixture
    def backing_blobs(self, postgres_store: SqlStore) -> BlobStore:
        return _blobs_of(postgres_store)


# -- compute: pools, quotas and the job queue ----------------------------------------------
class TestSqliteCompute(ComputeContract):
    @pytest.fixture
    def store(self, sqlite_store: SqlStore) -> SqlStore:
        return sqlite_store


@pytest.mark.postgres
class TestPostgresCompute(ComputeContract):
    @pytest.fixture
    def store(self, postgres_store: SqlStore) -> SqlStore:
        return postgres_store


class TestRestCompute(ComputeContract):
    """The queue over REST, against a real server over embedded SQLite."""

    @pytest.fixture
    def store(self, sqlite_store: SqlStore, tmp_path: Path) -> Iterator[Store]:
        yield from _rest_over(sqlite_store, tmp_path)


@pytest.mark.postgres
class TestRestOverPostgresCompute(ComputeContract):
    """The queue over REST, against a real server over PostgreSQL: team mode."""

    @pytest.fixture
    def store(self, postgres_store: SqlStore, tmp_path: Path) -> Iterator[Store]:
        yield from _rest_over(postgres_store, tmp_path)
