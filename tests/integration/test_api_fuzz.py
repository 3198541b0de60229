"""Property-based fuzzing of the server's REST API (schemathesis, against the served OpenAPI
document): no input yields a 5xx, and every response matches the schema. Bounded budget."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from luminary.server import create_app
from luminary.store._sql import SqlStore

_HOME = tempfile.TemporaryDirectory(prefix="luminary-fuzz-")  # removed when the run ends


def _app() -> Any:
    home = Path(_HOME.name)
    store = SqlStore(f"sqlite:///{home / 'luminary.db'}", str(home / "blobs"))
    run = store.create_run("cms-btag", name="seed", params={"lr": 0.01})
    store.write_metrics(run.id, [(1, "val_auc")], [(1, 0, 1, 0.9)])
    return _as_loopback(create_app(store, tmp_dir=home / "tmp", auth=False))


def _as_loopback(app: Any) -> Any:
    """Schemathesis calls an ASGI app as Host ``testserver``; a server without access control
    answers only loopback host names, so the requests are addressed to 127.0.0.1."""

    async def addressed(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"host"]
            scope = {**scope, "headers": [(b"host", b"127.0.0.1"), *headers]}
        await app(scope, receive, send)

    return addressed


schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", _app())


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_input_gives_a_server_error_or_breaks_the_schema(case: Any) -> None:
    case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])
