"""A pytest plugin for Optuna's own storage tests: their ``StorageSupplier`` and
``STORAGE_MODES`` (``optuna.testing.storages``) yield :class:`~luminary.tune.LuminaryStorage`
on a Luminary store instead of Optuna's storages.

Loaded (``-p tests.integration.tune.optuna_storage_plugin``) by
``test_optuna_storage_suite.py`` in a subprocess that runs Optuna's
``tests/storages_tests/test_storages.py`` from Optuna's source distribution. It replaces the
module before the tests import it. Modes: ``luminary_sqlite`` (a new embedded SQLite store per
test) and, where ``LUMINARY_TEST_POSTGRES_URL`` is set, ``luminary_postgres`` (one fresh
schema for the run, emptied before each test).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sys
import tempfile
import types
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from luminary.storage.schema import metadata
from luminary.store import SqlStore
from luminary.tune import LuminaryStorage

PROJECT = "optuna-tests"
_PG_ENV = "LUMINARY_TEST_POSTGRES_URL"
_pg_url: str | None = None
_pg_cleanup: contextlib.ExitStack = contextlib.ExitStack()

STORAGE_MODES: list[Any] = ["luminary_sqlite"]
if os.environ.get(_PG_ENV):
    STORAGE_MODES.append("luminary_postgres")
STORAGE_MODES_HEARTBEAT: list[Any] = list(STORAGE_MODES)


def _postgres_schema() -> str:
    """One schema for the whole run (migrating one per test would dominate its time)."""
    global _pg_url
    if _pg_url is None:
        base = os.environ[_PG_ENV]
        schema = f"lm_optuna_{secrets.token_hex(6)}"
        admin = sa.create_engine(base)
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))

        def drop() -> None:
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()

        _pg_cleanup.callback(drop)
        url = sa.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        _pg_url = url.render_as_string(hide_password=False)
    return _pg_url


class StorageSupplier(contextlib.AbstractContextManager[LuminaryStorage]):
    """Optuna's supplier, for Luminary's modes: a LuminaryStorage on a fresh, empty store."""

    def __init__(self, storage_specifier: str, **kwargs: Any) -> None:
        if storage_specifier not in STORAGE_MODES:
            msg = f"storage mode {storage_specifier!r} is not served here; modes: {STORAGE_MODES}"
            raise ValueError(msg)
        self.mode = storage_specifier
        self.kwargs = kwargs  # heartbeat_interval, grace_period, failed_trial_callback
        self.dir = ""
        self.store: SqlStore | None = None
        self.storage: LuminaryStorage | None = None

    def __enter__(self) -> LuminaryStorage:
        self.dir = tempfile.mkdtemp(prefix="lm-optuna-")
        if self.mode == "luminary_sqlite":
            self.store = SqlStore(f"sqlite:///{self.dir}/luminary.db", f"{self.dir}/blobs")
        else:
            self.store = SqlStore(_postgres_schema(), f"{self.dir}/blobs")
            with self.store.engine.begin() as conn:
                for table in reversed(metadata.sorted_tables):
                    conn.execute(table.delete())
        options: dict[str, Any] = {}
        if "heartbeat_interval" in self.kwargs:
            options["heartbeat_s"] = self.kwargs["heartbeat_interval"]
        if "grace_period" in self.kwargs:
            options["grace_s"] = self.kwargs["grace_period"]
        if "failed_trial_callback" in self.kwargs:
            options["failed_trial_callback"] = self.kwargs["failed_trial_callback"]
        self.storage = LuminaryStorage(self.store, PROJECT, **options)
        return self.storage

    def __exit__(self, *exc: object) -> None:
        if self.storage is not None:
            self.storage.close()
        if self.store is not None:
            self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _to_ms(when: datetime | None) -> datetime | None:
    return None if when is None else when.replace(microsecond=when.microsecond // 1000 * 1000)


def _install() -> None:
    module = types.ModuleType("optuna.testing.storages")
    module.__doc__ = __doc__
    module.STORAGE_MODES = STORAGE_MODES  # type: ignore[attr-defined]
    module.STORAGE_MODES_HEARTBEAT = STORAGE_MODES_HEARTBEAT  # type: ignore[attr-defined]
    module.StorageSupplier = StorageSupplier  # type: ignore[attr-defined]
    sys.modules["optuna.testing.storages"] = module
    import optuna.testing

    optuna.testing.storages = module  # type: ignore[attr-defined]

    # Luminary keeps times to the millisecond: the trials Optuna's tests generate (stamped
    # with datetime.now()) are rounded to it, so a read-back compares equal.
    from optuna.testing import pytest_storages

    generate = pytest_storages._generate_trial

    def generate_in_ms(*args: Any, **kwargs: Any) -> Any:
        trial = generate(*args, **kwargs)
        trial.datetime_start = _to_ms(trial.datetime_start)
        trial.datetime_complete = _to_ms(trial.datetime_complete)
        return trial

    pytest_storages._generate_trial = generate_in_ms


_install()


def pytest_unconfigure(config: Any) -> None:
    del config
    _pg_cleanup.close()
