"""Which host names mean "this machine": the test behind loopback-only binding, the Host and
Origin checks of servers without access control, and the client's warning about tokens sent
in clear text."""

from __future__ import annotations

import ipaddress

__all__ = ["host_of", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is this machine
    only: ``localhost``, 127.0.0.0/8 or ``::1``."""
    name = host.strip().lower().rstrip(".")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def host_of(authority: str) -> str:
    """The host of ``host[:port]`` or ``[v6]:port`` (a Host header, a URL's authority)."""
    authority = authority.strip().rpartition("@")[2]
    if authority.startswith("["):
        return authority[: authority.find("]") + 1] if "]" in authority else authority
    if authority.count(":") == 1:
        return authority.partition(":")[0]
    return authority  # no port, or a bare IPv6 address


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago (for a rendezvous, e.g. MASTER_PORT)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
