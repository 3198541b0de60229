"""The event log's writer: one row per change worth telling (a version registered, an alias
moved, a dataset version added), written inside the transaction that made the change."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from luminary._clock import now_ms
from luminary.storage import schema as t

__all__ = ["insert_event"]


def insert_event(
    conn: sa.Connection, kind: str, subject: str, payload: Mapping[str, Any], actor: str
) -> None:
    conn.execute(
        t.events.insert(),
        {
            "kind": kind,
            "subject": subject,
            "payload": json.dumps(payload, sort_keys=True),
            "actor": actor,
            "at_ms": now_ms(),
        },
    )
