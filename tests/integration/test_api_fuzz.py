"""Property-based fuzzing of the server's REST API (schemathesis, against the served OpenAPI
document) in team mode, authentication on: no input yields a 5xx, and every response matches
the schema. Each case is sent as one of three principals (a server admin, a writer and a reader
of the seeded project), so the permission checks are fuzzed too. Bounded budget: about a
minute on a quiet machine."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from luminary.auth.models import Role
from luminary.server import create_app
from luminary.store import SqlStore

_HOME = tempfile.TemporaryDirectory(prefix="luminary-fuzz-")  # removed when the run ends
_TOKENS: dict[str, str] = {}


def _app() -> Any:
    home = Path(_HOME.name)
    store = SqlStore(f"sqlite:///{home / 'luminary.db'}", str(home / "blobs"))
    store.ensure_user("root", is_admin=True)
    for user, role in (("wanda", Role.WRITER), ("rita", Role.READER)):
        store.ensure_user(user)
        store.grant(user, "cms-btag", role)
    _TOKENS.update({u: store.create_token(u)[1] for u in ("root", "wanda", "rita")})
    run = store.create_run("cms-btag", name="seed", params={"lr": 0.01})
    store.write_metrics(run.id, [(1, "val_auc")], [(1, 0, 1, 0.9)])
    return create_app(store, tmp_dir=home / "tmp", auth=True)


schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", _app())
_PRINCIPALS = itertools.cycle(("root", "wanda", "rita"))


def test_every_case_is_sent_with_a_valid_token() -> None:
    assert set(_TOKENS) == {"root", "wanda", "rita"}
    assert all(secret.startswith("lum_") for secret in _TOKENS.values())


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_input_gives_a_server_error_or_breaks_the_schema(case: Any) -> None:
    token = _TOKENS[next(_PRINCIPALS)]
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"},
        checks=[not_a_server_error, response_schema_conformance],
    )
