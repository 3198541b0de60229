"""``luminary tokens`` against a real embedded home."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import luminary as lm
from luminary.auth import Role
from luminary.cli import app
from luminary.cli.tokens import parse_duration
from luminary.errors import AuthenticationError, InvalidArgumentError

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_create_prints_the_secret_once_and_it_authenticates() -> None:
    code, output = invoke(
        "tokens",
        "create",
        "--user",
        "alice",
        "--project",
        "cms-btag",
        "--role",
        "writer",
        "-o",
        "json",
    )
    assert code == 0, output
    data = json.loads(output)
    store = lm.get_store()
    who = store.authenticate(data["token"])  # type: ignore[attr-defined]
    assert who.user == "alice"
    assert who.can(store.get_project("cms-btag").id, Role.WRITER)
    code, output = invoke("tokens", "list", "-o", "json")
    listed = json.loads(output)
    assert [t["id"] for t in listed] == [data["id"]]
    assert data["token"] not in output


def test_admin_token_and_revoke() -> None:
    code, output = invoke(
        "tokens", "create", "--user", "ops", "--admin", "--expires", "30d", "-o", "json"
    )
    assert code == 0, output
    data = json.loads(output)
    assert data["expires_at"] is not None
    assert invoke("tokens", "revoke", data["id"])[0] == 0
    with pytest.raises(AuthenticationError, match="revoked"):
        lm.get_store().authenticate(data["token"])  # type: ignore[attr-defined]
    code, output = invoke("tokens", "list")
    assert "revoked" in output


@pytest.mark.parametrize(
    "args",
    [
        ["--user", "x"],  # neither --admin nor --project
        ["--user", "x", "--admin", "--project", "p", "--role", "reader"],
        ["--user", "x", "--project", "p", "--role", "owner"],
        ["--user", "x", "--admin", "--expires", "soon"],
    ],
)
def test_bad_arguments_are_clear_errors(args: list[str]) -> None:
    result = runner.invoke(app, ["tokens", "create", *args])
    assert result.exit_code != 0
    assert isinstance(result.exception, InvalidArgumentError)


def test_durations() -> None:
    assert parse_duration("90s") == 90
    assert parse_duration("12h") == 12 * 3600
    assert parse_duration("2w") == 14 * 86400
    with pytest.raises(InvalidArgumentError):
        parse_duration("0d")
