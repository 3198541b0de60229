"""Migrations create exactly the schema the code declares, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from luminary.storage import engine as _engine
from luminary.storage.schema import metadata


def test_head_revision_constant_matches_alembic() -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(_engine._MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_current_head() == _engine.HEAD_REVISION


def _assert_matches_metadata(engine: sa.Engine) -> None:
    _engine.migrate(engine)
    assert _engine.current_revision(engine) == _engine.HEAD_REVISION
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_sqlite_migration_matches_schema(tmp_path: Path) -> None:
    engine = _engine.create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    _assert_matches_metadata(engine)
    _engine.migrate(engine)  # a second open is a no-op
    engine.dispose()


@pytest.mark.postgres
def test_postgres_migration_matches_schema(postgres_url: str) -> None:
    engine = _engine.create_engine(postgres_url)
    _assert_matches_metadata(engine)
    engine.dispose()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    engine = _engine.create_engine(f"sqlite:///{tmp_path / 'b.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 60000
    engine.dispose()


@pytest.mark.parametrize("url", ["mysql://x/y", "not a url", "oracle+cx://a"])
def test_unsupported_database_url_is_a_clear_error(url: str) -> None:
    from luminary.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="sqlite"):
        _engine.create_engine(url)
