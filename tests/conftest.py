from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from luminary.storage.schema import metadata
from luminary.store import SqlStore, set_store
from tests._components import require, required


def pytest_configure(config: pytest.Config) -> None:
    """Refuse an unknown name in LUMINARY_TEST_REQUIRE before any test runs."""
    required()


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own LUMINARY_HOME and a fresh SDK store."""
    home = tmp_path / "home"
    monkeypatch.setenv("LUMINARY_HOME", str(home))
    for var in (
        "LUMINARY_DB",
        "LUMINARY_BLOBS",
        "LUMINARY_URI",
        "LUMINARY_PROJECT",
        "LUMINARY_SYNC",
        "LUMINARY_SQLITE_SYNC",
        "LUMINARY_FSYNC",
    ):
        monkeypatch.delenv(var, raising=False)
    set_store(None)
    yield home
    set_store(None)


@pytest.fixture
def home(_isolated_home: Path) -> Path:
    """This test's LUMINARY_HOME."""
    return _isolated_home


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqlStore]:
    store = SqlStore(f"sqlite:///{tmp_path / 'db' / 'luminary.db'}", str(tmp_path / "blobs"))
    yield store
    store.close()


def _postgres_base_url() -> str:
    url = os.environ.get("LUMINARY_TEST_POSTGRES_URL")
    if not url:
        require("postgres", "LUMINARY_TEST_POSTGRES_URL is not set")
    return url


@contextlib.contextmanager
def _fresh_schema(base: str) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a new schema, dropped afterwards."""
    schema = f"lm_test_{secrets.token_hex(6)}"
    admin = sa.create_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.fail(f"LUMINARY_TEST_POSTGRES_URL={base} is set but does not answer: {exc}")
    url = sa.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty schema (for tests of migrations themselves)."""
    with _fresh_schema(_postgres_base_url()) as url:
        yield url


@pytest.fixture(scope="session")
def _postgres_session_url() -> Iterator[str]:
    with _fresh_schema(_postgres_base_url()) as url:
        yield url


@pytest.fixture
def postgres_store(_postgres_session_url: str, tmp_path: Path) -> Iterator[SqlStore]:
    """A migrated PostgreSQL store, emptied before each test (one schema per session)."""
    store = SqlStore(_postgres_session_url, str(tmp_path / "blobs"))
    with store.engine.begin() as conn:  # DELETE beats TRUNCATE on a few tiny tables
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
    yield store
    store.close()
