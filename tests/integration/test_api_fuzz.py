"""Property-based fuzzing of the server's REST API (schemathesis, against the served OpenAPI
document): no input yields a 5xx, and every response matches the schema. Bounded budget."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")

from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

from luminary.server import create_app  # noqa: E402
from luminary.store._sql import SqlStore  # noqa: E402


def _app() -> Any:
    home = Path(tempfile.mkdtemp(prefix="luminary-fuzz-"))
    store = SqlStore(f"sqlite:///{home / 'luminary.db'}", str(home / "blobs"))
    run = store.create_run("cms-btag", name="seed", params={"lr": 0.01})
    store.write_metrics(run.id, [(1, "val_auc")], [(1, 0, 1, 0.9)])
    kwargs: dict[str, Any] = {"tmp_dir": home / "tmp"}
    if "auth" in create_app.__code__.co_varnames:
        kwargs["auth"] = False
    return create_app(store, **kwargs)


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
