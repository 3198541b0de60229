"""Waking agents on this machine the moment the queue changes, instead of polling fast.

An agent of an embedded store binds a UNIX datagram socket in a folder named after the
store's database (under the temporary directory, private to the user); whoever submits a job
sends one byte to every socket there. The agent still reads the queue's change counter every
``poll_s`` (a safety net, and the only way in team mode, where agents run on other machines).
A socket whose agent died refuses the byte and is removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import select
import socket
import tempfile
from pathlib import Path

__all__ = ["Waker", "wake_all", "wake_dir"]


def wake_dir(key: str) -> Path:
    """The folder of the wake sockets of agents serving the store named by ``key``."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"luminary-{os.getuid()}" / "wake" / digest


class Waker:
    """A socket to wait on; :meth:`wait` returns early when someone calls :func:`wake_all`
    (or :meth:`poke`)."""

    def __init__(self, key: str, name: str) -> None:
        folder = wake_dir(key)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = folder / f"{name}-{os.getpid()}.sock"
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.setblocking(False)

    def wait(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s``; True if woken."""
        ready, _, _ = select.select([self.sock], [], [], timeout_s)
        if not ready:
            return False
        with contextlib.suppress(BlockingIOError):
            while self.sock.recv(64):
                pass
        return True

    def poke(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendto(b"!", str(self.path))

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def wake_all(key: str) -> None:
    """Wake every agent of this machine serving the store named by ``key``."""
    folder = wake_dir(key)
    if not folder.is_dir():
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        for path in folder.glob("*.sock"):
            try:
                sock.sendto(b"!", str(path))
            except (ConnectionRefusedError, FileNotFoundError):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()  # its agent is gone
            except OSError:  # a full buffer: that agent is already awake
                continue
