"""Database engines: SQLite tuned for many writers, PostgreSQL by URL, and migrations on first use.

SQLite runs in WAL mode with a busy timeout. Every write transaction starts with
``BEGIN IMMEDIATE``, so a writer waits for the lock up front (busy timeout) instead of
failing with "database is locked" when it upgrades a read lock mid-transaction; reads start
with a plain ``BEGIN`` and never block writers.

Migrations (Alembic) run automatically the first time a database is opened: a quick look at
``alembic_version`` decides whether Alembic is needed at all, and concurrent first opens are
serialised by a file lock (SQLite) or an advisory lock (PostgreSQL).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from luminary._optional import require
from luminary.config import sync_level
from luminary.errors import (
    BackendUnavailableError,
    InvalidArgumentError,
    NotFoundError,
    StorageFullError,
)

__all__ = [
    "HEAD_REVISION",
    "RawSession",
    "create_engine",
    "migrate",
    "missing_version",
    "next_version",
    "read_tx",
    "write_tx",
]

#: The newest migration; a test asserts it matches Alembic's head.
HEAD_REVISION = "0007"

_MIGRATIONS = Path(__file__).with_name("migrations")
_PG_LOCK_KEY = 0x4C554D494E  # "LUMIN"


def create_engine(
    url: str, *, sqlite_sync: str = "NORMAL", busy_timeout_s: float = 60.0
) -> sa.Engine:
    """Create an engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://…``).

    ``sqlite_sync`` (``normal`` or ``full``, see ``LUMINARY_SYNC`` in :mod:`luminary.config`)
    sets SQLite's ``synchronous`` pragma on every connection (``off`` too, for throwaway
    databases such as a benchmark's seed). PostgreSQL's durability is the server's
    (``synchronous_commit``); the setting does not change it.
    """
    sqlite_sync = (
        "OFF" if sqlite_sync.strip().upper() == "OFF" else sync_level(sqlite_sync, "sqlite_sync")
    )
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        msg = (
            f"database URL {url!r} is not valid; use sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST:PORT/DB"
        )
        raise InvalidArgumentError(msg) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed, sqlite_sync, busy_timeout_s)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        if parsed.get_driver_name() == "psycopg":  # the driver the postgres extra installs
            require("psycopg", "postgres", "PostgreSQL")
        return sa.create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=10)
    msg = f"database URL {url!r} names backend {backend!r}; Luminary supports sqlite and postgresql"
    raise InvalidArgumentError(msg)


def _sqlite_engine(url: sa.URL, sync: str, busy_timeout_s: float) -> sa.Engine:
    if url.database and url.database != ":memory:":
        folder = Path(url.database).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = (
                f"the database {url.database} cannot be created: its folder {folder} cannot be "
                f"made ({exc}); point LUMINARY_DB (or LUMINARY_HOME) at a writable folder"
            )
            raise BackendUnavailableError(msg) from exc
    engine = sa.create_engine(
        url,
        connect_args={"timeout": busy_timeout_s, "check_same_thread": False},
        poolclass=sa.pool.QueuePool if url.database not in (None, "", ":memory:") else None,
    )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cur.execute(f"PRAGMA synchronous={sync}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = "IMMEDIATE" if conn.get_execution_options().get("luminary_write") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


@contextlib.contextmanager
def write_tx(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A write transaction: ``BEGIN IMMEDIATE`` on SQLite, committed on success."""
    with _translate_errors(engine), engine.connect() as conn:
        conn = conn.execution_options(luminary_write=True)
        with conn.begin():
            yield conn


@contextlib.contextmanager
def read_tx(engine: sa.Engine) -> Iterator[sa.Connection]:
    with _translate_errors(engine), engine.connect() as conn, conn.begin():
        yield conn


class RawSession:
    """Transactions straight on the driver's connections, for hot paths where SQLAlchemy's
    cost per statement (~100 µs of CPU, against ~5 µs for the statement itself on SQLite)
    would dominate: an Optuna trial's ask and tell. SQL is written with ``?`` placeholders
    and works on SQLite and PostgreSQL alike (:meth:`sql` adapts it once).

    Connections come from the engine's pool and are kept between transactions (at most
    ``keep``); driver errors are translated as :func:`write_tx` does, except integrity
    errors, which the caller maps (:attr:`integrity_error`). Thread safety: each transaction
    has its own connection; safe to share between threads.
    """

    def __init__(self, engine: sa.Engine, *, keep: int = 4) -> None:
        self.engine = engine
        self.is_pg = engine.dialect.name == "postgresql"
        self.integrity_error: type[Exception] = engine.dialect.loaded_dbapi.IntegrityError
        self._free: list[Any] = []
        self._keep = keep
        self._lock = threading.Lock()
        self._sql: dict[str, str] = {}

    def sql(self, text: str) -> str:
        """``text`` with the driver's placeholders (``%s`` on PostgreSQL)."""
        out = self._sql.get(text)
        if out is None:
            out = self._sql[text] = text.replace("?", "%s") if self.is_pg else text
        return out

    @contextlib.contextmanager
    def tx(self, *, write: bool = True) -> Iterator[Any]:
        """A transaction's DBAPI cursor: committed on success, rolled back on error. On
        SQLite a read (``write=False``) runs each statement in its own snapshot (autocommit):
        use it for single-statement reads."""
        with _translate_errors(self.engine):
            with self._lock:
                conn = self._free.pop() if self._free else None
            if conn is None:
                conn = self.engine.raw_connection()
            ok = False
            try:
                cur = conn.cursor()
                if write and not self.is_pg:
                    cur.execute("BEGIN IMMEDIATE")
                yield cur
                if self.is_pg:
                    conn.commit()
                elif write:
                    cur.execute("COMMIT")
                ok = True
            finally:
                if not ok:
                    self._rollback(conn)
                self._release(conn, healthy=ok or self._alive(conn))

    def _rollback(self, conn: Any) -> None:
        try:
            if self.is_pg:
                conn.rollback()
            else:
                conn.cursor().execute("ROLLBACK")
        except Exception:  # noqa: BLE001 - the connection is dropped below if it is broken
            return

    def _alive(self, conn: Any) -> bool:
        if not self.is_pg:
            return not conn.driver_connection.in_transaction
        return not conn.driver_connection.closed

    def _release(self, conn: Any, *, healthy: bool) -> None:
        with self._lock:
            if healthy and len(self._free) < self._keep:
                self._free.append(conn)
                return
        try:
            conn.close() if healthy else conn.invalidate()
        except Exception:  # noqa: BLE001 - closing a broken connection may fail too
            return

    def close(self) -> None:
        with self._lock:
            free, self._free = self._free, []
        for conn in free:
            conn.close()


@contextlib.contextmanager
def _translate_errors(engine: sa.Engine) -> Iterator[None]:
    """The one boundary where driver errors about the database itself (gone, full, not
    openable, read-only) become Luminary errors; the transaction was rolled back, so nothing
    half-written stays."""
    try:
        yield
    except sa.exc.IntegrityError:
        raise  # a constraint the caller maps (already exists, conflict), not the database
    except (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DatabaseError) as exc:
        translated = _translated(engine, exc.orig, invalidated=exc.connection_invalidated)
        if translated is not None:
            raise translated from exc
        if _over_limit(exc.orig):
            raise _refused(exc.orig) from exc
        raise
    except OverflowError as exc:  # sqlite3: "Python int too large to convert to SQLite INTEGER"
        raise _refused(exc) from exc
    except Exception as exc:
        # A driver error SQLAlchemy did not wrap: PostgreSQL's COPY runs on the raw connection.
        dbapi = engine.dialect.loaded_dbapi
        if isinstance(exc, (dbapi.OperationalError, dbapi.InterfaceError)):
            translated = _translated(engine, exc, invalidated=False)
            if translated is not None:
                raise translated from exc
        if isinstance(exc, dbapi.Error) and _over_limit(exc):
            raise _refused(exc) from exc
        raise


#: What a database says when a statement's numbers or size are past its limits: SQLite's
#: texts, and PostgreSQL's SQLSTATE classes 22003 (numeric value out of range) and 54
#: (program limit exceeded: expression depth, too many joins or parameters).
_LIMIT_TEXTS = (
    "expression tree is too large",
    "tables in a join",
    "too many sql variables",
    "parser stack overflow",
    "too many terms",
    "string or blob too big",
    "out of range",
    "too large to convert",
)


def _over_limit(exc: BaseException | None) -> bool:
    state = str(getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None) or "")
    if state == "22003" or state.startswith("54"):
        return True
    text = str(exc).lower()
    return any(words in text for words in _LIMIT_TEXTS)


def _refused(cause: BaseException | None) -> InvalidArgumentError:
    """A request past the database's limits is bad input (400), not a server fault."""
    reason = str(cause).splitlines()[0] if cause is not None else "unknown"
    return InvalidArgumentError(
        f"the database refused the request as past its limits ({reason}); integers must fit "
        "64 bits (-9223372036854775808 to 9223372036854775807) and searches must stay within "
        "the documented filter limits; use smaller values or split the request"
    )


#: What a driver says when the database went away (restarting, shut down, unreachable).
_GONE = ("connect", "terminat", "server closed", "shutting down", "starting up", "is closed")
#: What SQLite and PostgreSQL say when the disk holding the database is full.
_FULL = ("database or disk is full", "no space left on device", "could not extend file")
_READ_ONLY = ("readonly database", "read-only", "read only")
_CANNOT_OPEN = ("unable to open database file",)


def _translated(
    engine: sa.Engine, cause: BaseException | None, *, invalidated: bool
) -> BackendUnavailableError | None:
    text = str(cause).lower()
    where = _where(engine)
    if any(word in text for word in _FULL):
        folder = Path(where).parent if engine.dialect.name == "sqlite" else where
        return StorageFullError.at(folder, f"the database {where}")
    if any(word in text for word in _READ_ONLY):
        return BackendUnavailableError(
            f"the database {where} is read-only for this process ({cause}); nothing was "
            "written. Make the file and its folder writable by this user, or point "
            "LUMINARY_DB (or LUMINARY_HOME) at a writable place"
        )
    if any(word in text for word in _CANNOT_OPEN):
        return BackendUnavailableError(
            f"the database {where} cannot be opened ({cause}); check that its folder exists "
            "and is writable by this user (SQLite also writes -wal and -shm files beside it), "
            "or point LUMINARY_DB (or LUMINARY_HOME) elsewhere"
        )
    if invalidated or any(word in text for word in _GONE):
        return _unavailable(engine, cause)
    return None


def _where(engine: sa.Engine) -> str:
    """The database file (SQLite) or its URL without the password."""
    if engine.dialect.name == "sqlite" and engine.url.database:
        return str(Path(engine.url.database).expanduser().resolve())
    return engine.url.render_as_string(hide_password=True)


def _unavailable(engine: sa.Engine, cause: BaseException | None) -> BackendUnavailableError:
    return BackendUnavailableError(
        f"the database at {_where(engine)} does not answer ({cause}); check that it is running "
        "and reachable"
    )


def next_version(
    conn: sa.Connection, column: sa.Column[Any], owner: sa.Column[Any], key: str
) -> int:
    """One more than the highest ``column`` among rows whose ``owner`` is ``key`` (1 if none).

    Callers insert the new row in the same transaction and retry on a unique-key clash, which
    is how concurrent writers on PostgreSQL are resolved (SQLite writers are serialised).
    """
    highest = conn.execute(sa.select(sa.func.max(column)).where(owner == key)).scalar()
    return int(highest or 0) + 1


def missing_version(
    conn: sa.Connection,
    column: sa.Column[Any],
    owner: sa.Column[Any],
    key: str,
    what: str,
    version: int | None,
) -> NotFoundError:
    """The error for ``what`` (``"model 'jet-tagger'"``) having no version ``version``, listing
    the versions it has (``None``: it has none at all)."""
    have = conn.execute(sa.select(column).where(owner == key).order_by(column)).scalars().all()
    listed = ", ".join(str(x) for x in have) or "none yet"
    if version is None:
        return NotFoundError(f"{what} has no versions; versions: {listed}")
    return NotFoundError(f"{what} has no version {version}; versions: {listed}")


def current_revision(engine: sa.Engine) -> str | None:
    with read_tx(engine) as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: sa.Engine, lock_dir: Path | None = None) -> None:
    """Bring the schema to ``HEAD_REVISION``; cheap when it already is."""
    if current_revision(engine) == HEAD_REVISION:
        return
    with _migration_lock(engine, lock_dir):
        if current_revision(engine) == HEAD_REVISION:
            return
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        with _translate_errors(engine), engine.connect() as conn:
            conn = conn.execution_options(luminary_write=True)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()


@contextlib.contextmanager
def _migration_lock(engine: sa.Engine, lock_dir: Path | None) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with _translate_errors(engine), engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                conn.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    path = (lock_dir or Path(database).expanduser().parent) / ".luminary-migrate.lock"
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
