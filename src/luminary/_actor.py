"""Who is acting: recorded with alias moves, versions and events."""

from __future__ import annotations

import getpass
import os
import socket


def current_actor() -> str:
    """``LUMINARY_USER`` if set, else ``user@host``."""
    explicit = os.environ.get("LUMINARY_USER")
    if explicit:
        return explicit[:200]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"[:200]
