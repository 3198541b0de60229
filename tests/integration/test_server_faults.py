"""The server under faults: its PostgreSQL restarting while clients log metrics, and the access log.

The restart test runs a private PostgreSQL (``initdb`` in a temporary folder, on a free port, as
the ``postgres`` OS user: PostgreSQL refuses to run as root), never the machine's shared one.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from luminary.auth.models import Role
from luminary.errors import BackendUnavailableError, NotFoundError
from luminary.store import SqlStore
from luminary.store._rest import RestStore
from luminary.tracking._run import ActiveRun
from tests._components import import_component, require
from tests.integration.luminary_server import serve_in_thread

import_component("psycopg", "postgres")


# -- a private PostgreSQL -------------------------------------------------------------------
class PrivatePostgres:
    def __init__(self, bindir: Path, root: Path, port: int, as_user: list[str]) -> None:
        self.bindir, self.root, self.port, self._as = bindir, root, port, as_user
        self.data = root / "data"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"

    def _ctl(self, *args: str, timeout: float = 60) -> None:
        cmd = [*self._as, str(self.bindir / "pg_ctl"), "-D", str(self.data), *args]
        # Output to a file, never a pipe: the server pg_ctl starts would hold a pipe open.
        with tempfile.TemporaryFile() as out:
            done = subprocess.run(cmd, stdout=out, stderr=out, timeout=timeout, check=False)
            if done.returncode != 0:
                out.seek(0)
                msg = f"{' '.join(cmd)} failed: {out.read().decode(errors='replace')}"
                raise RuntimeError(msg)

    def init_and_start(self) -> None:
        init = [str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"]
        subprocess.run(
            [*self._as, *init, "--no-sync"], capture_output=True, check=True, timeout=120
        )
        opts = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=100"
        )
        self._ctl("-o", opts, "-l", str(self.root / "log"), "-w", "start")

    def restart(self) -> None:
        self._ctl("-l", str(self.root / "log"), "-m", "fast", "-w", "restart")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._ctl("-m", "immediate", "-w", "stop", timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        require("postgres", "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb)")
    bindir = Path(found[-1]).parent
    try:
        pg_user = pwd.getpwnam("postgres")
    except KeyError:
        require("postgres", "no `postgres` OS user to run a private PostgreSQL as")
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser is None:
            require("postgres", "running as root without `runuser` to start PostgreSQL as postgres")
        as_user = [runuser, "-u", "postgres", "--"]
    elif os.geteuid() == pg_user.pw_uid:
        as_user = []
    else:
        require("postgres", "a private PostgreSQL needs root (to run as postgres) or user postgres")
    root = Path(tempfile.mkdtemp(prefix="luminary-pg-"))
    root.chmod(0o755)
    if os.geteuid() == 0:
        os.chown(root, pg_user.pw_uid, pg_user.pw_gid)
    pg = PrivatePostgres(bindir, root, _free_port(), as_user)
    try:
        pg.init_and_start()
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def _access_lines() -> Iterator[list[str]]:
    logger = logging.getLogger("luminary.access")
    handler = _Records()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


# -- PostgreSQL restarts under load ---------------------------------------------------------
def test_postgres_restart_under_load_loses_and_duplicates_no_point(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    store = SqlStore(private_postgres.url, str(tmp_path / "blobs"))
    errors: list[BaseException] = []
    logged: dict[str, int] = {}
    acked: dict[str, int] = {}
    stop = threading.Event()
    try:
        with _access_lines() as access, serve_in_thread(store, tmp_path, auth=False) as url:

            def client(n: int) -> None:
                rest = RestStore(url, retries=6)
                try:
                    run = ActiveRun(
                        rest, rest.create_run("faults"), flush_every_s=0.05, capture_env=False
                    )
                    i = 0
                    while not stop.is_set():
                        run.log({"x": float(i), "y": -float(i)}, step=i)
                        i += 1
                        logged[run.id] = i
                        if i % 25 == 0:
                            try:
                                run.flush()
                                acked[run.id] = i
                            except BackendUnavailableError:  # clear, and the points stay
                                pass
                        time.sleep(0.001)
                    deadline = time.monotonic() + 20
                    while True:  # the outage is over: everything logged gets written
                        try:
                            run.flush()
                            break
                        except BackendUnavailableError:
                            if time.monotonic() > deadline:
                                raise
                            time.sleep(0.2)
                    acked[run.id] = i
                    run.end()
                except BaseException as exc:  # reported below
                    errors.append(exc)
                finally:
                    rest.close()

            threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
            for th in threads:
                th.start()
            time.sleep(1.5)
            before = dict(acked)
            private_postgres.restart()
            time.sleep(1.5)
            stop.set()
            for th in threads:
                th.join(60)
            assert not any(th.is_alive() for th in threads)
        assert errors == [], errors
        assert len(acked) == 4
        assert all(acked[r] > before.get(r, 0) for r in acked), "no client recovered"
        for run_id, n in acked.items():
            assert n == logged[run_id]
            for key in ("x", "y"):
                steps = store.get_metric_history(run_id, key).steps
                assert len(steps) == n, f"run {run_id} {key}: {len(steps)} points, logged {n}"
                assert sorted(steps) == list(range(n))
        statuses = [json.loads(line)["status"] for line in access]
        assert 500 not in statuses, "a database restart must answer 503, not 500"
    finally:
        store.close()


def test_a_stopped_database_answers_503_with_retry_after(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    store = SqlStore(private_postgres.url, str(tmp_path / "blobs"))
    try:
        with serve_in_thread(store, tmp_path, auth=False) as url:
            with contextlib.closing(RestStore(url)) as rest:
                run = rest.create_run("faults")
            private_postgres.stop()
            resp = httpx.post(
                f"{url}/api/v1/runs/{run.id}/metrics",
                json={"series": [[1, "x"]], "points": [[1, 0, 1, 1.0]], "batch_id": "b1"},
            )
            assert resp.status_code == 503
            assert resp.headers["retry-after"] == "1"
            assert resp.json()["code"] == BackendUnavailableError.code
            with (
                contextlib.closing(RestStore(url, retries=1)) as rest,
                pytest.raises(BackendUnavailableError, match="does not answer"),
            ):
                rest.get_run(run.id)
    finally:
        store.close()


# -- the access log -------------------------------------------------------------------------
def test_each_request_writes_one_json_access_line(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'luminary.db'}", str(tmp_path / "blobs"))
    store.ensure_user("wanda")
    store.grant("wanda", "alpha", Role.WRITER)
    secret = store.create_token("wanda")[1]
    try:
        with _access_lines() as access, serve_in_thread(store, tmp_path, auth=True) as url:
            rest = RestStore(url, token=secret)
            try:
                run = rest.create_run("alpha")
                with pytest.raises(NotFoundError):
                    rest.get_run("f" * 32)
            finally:
                rest.close()
            anonymous = httpx.get(f"{url}/api/v1/projects")
            assert anonymous.status_code == 401
        lines = [json.loads(line) for line in access]
        assert len(lines) == 3
        created, missing, refused = lines
        assert created["method"] == "POST"
        assert created["path"] == "/api/v1/runs"
        assert created["status"] == 201
        assert created["user"] == "wanda"
        assert created["bytes_in"] > 0
        assert created["bytes_out"] > len(run.id)
        assert created["duration_ms"] >= 0
        assert created["client"].startswith("127.0.0.1:")
        assert created["time"].endswith("+00:00")
        assert (missing["path"], missing["status"], missing["user"]) == (
            f"/api/v1/runs/{'f' * 32}",
            404,
            "wanda",
        )
        assert (refused["status"], refused["user"]) == (401, None)
    finally:
        store.close()
