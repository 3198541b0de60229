"""The Store contract against embedded SQLite and against the machine's PostgreSQL."""

from __future__ import annotations

import pytest

from luminary.store._sql import SqlStore
from luminary.testing.store_contract import DatasetContract, RegistryContract, StoreContract


class TestSqliteStore(StoreContract, RegistryContract, DatasetContract):
    @pytest.fixture
    def store(self, sqlite_store: SqlStore) -> SqlStore:
        return sqlite_store


@pytest.mark.postgres
class TestPostgresStore(StoreContract, RegistryContract, DatasetContract):
    @pytest.fixture
    def store(self, postgres_store: SqlStore) -> SqlStore:
        return postgres_store
