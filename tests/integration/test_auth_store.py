"""Users, tokens and roles on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from luminary.auth import Role
from luminary.errors import AlreadyExistsError, AuthenticationError, NotFoundError
from luminary.store import SqlStore


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> SqlStore:
    fixture = "sqlite_store" if request.param == "sqlite" else "postgres_store"
    value: SqlStore = request.getfixturevalue(fixture)
    return value


def test_a_token_authenticates_its_user_with_roles(store: SqlStore) -> None:
    store.create_user("alice")
    store.grant("alice", "cms-btag", Role.WRITER)
    store.grant("alice", "lhcb-gnn", Role.READER)
    token, secret = store.create_token("alice", description="laptop")
    assert secret.startswith("lum_" + token.id + "_")
    who = store.authenticate(secret)
    cms = store.get_project("cms-btag").id
    lhcb = store.get_project("lhcb-gnn").id
    assert who.user == "alice"
    assert who.is_admin is False
    assert who.can(cms, Role.WRITER)
    assert not who.can(lhcb, Role.WRITER)
    assert who.can(lhcb, Role.READER)
    assert store.get_user("alice").roles == {"cms-btag": Role.WRITER, "lhcb-gnn": Role.READER}


def test_the_secret_is_never_stored(store: SqlStore) -> None:
    store.create_user("bob")
    _, secret = store.create_token("bob")
    with store.engine.connect() as conn:
        dumped = " ".join(
            str(v) for row in conn.exec_driver_sql("SELECT * FROM tokens") for v in row
        )
    assert secret not in dumped
    assert secret.rsplit("_", 1)[1] not in dumped


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda s: s[:-1] + ("0" if s[-1] != "0" else "1"), "not valid"),
        (lambda s: "Bearer something", "malformed"),
        (lambda s: "", "malformed"),
        (lambda s: s.replace("lum_", "lum_0"), "malformed"),
    ],
)
def test_wrong_or_malformed_tokens_are_refused(
    store: SqlStore, mangle: Callable[[str], str], reason: str
) -> None:
    store.create_user("carol")
    _, secret = store.create_token("carol")
    with pytest.raises(AuthenticationError, match=reason):
        store.authenticate(mangle(secret))


def test_revoked_and_expired_tokens_are_refused_with_the_reason(store: SqlStore) -> None:
    store.create_user("dave")
    token, secret = store.create_token("dave")
    assert store.revoke_token(token.id).revoked_at is not None
    with pytest.raises(AuthenticationError, match="revoked"):
        store.authenticate(secret)
    _, short = store.create_token("dave", expires_in_s=0.05)
    time.sleep(0.1)
    with pytest.raises(AuthenticationError, match="expired"):
        store.authenticate(short)
    with pytest.raises(NotFoundError):
        store.revoke_token("0" * 16)


def test_admin_tokens_and_users(store: SqlStore) -> None:
    assert store.has_admin_token() is False
    store.ensure_user("root-admin", is_admin=True)
    token, secret = store.create_token("root-admin")
    assert store.has_admin_token() is True
    assert store.authenticate(secret).is_admin is True
    assert store.authenticate(secret).can("any-project-id", Role.ADMIN)
    store.revoke_token(token.id)
    assert store.has_admin_token() is False
    with pytest.raises(AlreadyExistsError):
        store.create_user("root-admin")
    assert [u.name for u in store.list_users()] == ["root-admin"]
    assert [t.id for t in store.list_tokens("root-admin")] == [token.id]


def test_unknown_user_suggests_the_nearest(store: SqlStore) -> None:
    store.create_user("alice")
    with pytest.raises(NotFoundError, match="did you mean 'alice'"):
        store.create_token("alcie")
