"""The search filter language: parser, errors, and behaviour against a real SQLite database."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql

from luminary.errors import FilterSyntaxError, InvalidArgumentError
from luminary.storage.filter import (
    And,
    Compare,
    Field,
    InList,
    IsNull,
    Like,
    MatchAll,
    Not,
    Or,
    OrderTerm,
    compile_search,
    parse_filter,
    parse_order_by,
    referenced_fields,
)
from luminary.storage.schema import metadata, metric_series, params, projects, runs, tags
from tests._components import require

PG: sa.Dialect = postgresql.dialect()  # type: ignore[no-untyped-call]


def P(key: str) -> Field:
    return Field("params", key)


def M(key: str) -> Field:
    return Field("metrics", key)


def A(key: str) -> Field:
    return Field("attr", key)


# ---------------------------------------------------------------------------------------------
# Parser


def test_precedence_and_binds_tighter_than_or() -> None:
    got = parse_filter("params.a = 1 or params.b = 2 and params.c = 3")
    assert got == Or(
        (Compare(P("a"), "=", 1), And((Compare(P("b"), "=", 2), Compare(P("c"), "=", 3))))
    )


def test_not_binds_tighter_than_and_and_parentheses_group() -> None:
    assert parse_filter("not params.a = 1 and params.b = 2") == And(
        (Not(Compare(P("a"), "=", 1)), Compare(P("b"), "=", 2))
    )
    assert parse_filter("not (params.a = 1 or params.b = 2)") == Not(
        Or((Compare(P("a"), "=", 1), Compare(P("b"), "=", 2)))
    )
    assert parse_filter("((params.a = 1))") == Compare(P("a"), "=", 1)
    assert parse_filter("not not params.a = 1") == Not(Not(Compare(P("a"), "=", 1)))


def test_keywords_are_case_insensitive() -> None:
    got = parse_filter("params.a IN (1) AND NOT params.b Is Not NULL Or params.c ILIKE 'x'")
    assert got == Or(
        (
            And((InList(P("a"), (1,)), Not(IsNull(P("b"), negated=True)))),
            Like(P("c"), "x", case_insensitive=True),
        )
    )


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("metrics.`val/auc` > 1", M("val/auc")),
        ('params."learning rate" > 1', P("learning rate")),
        ("tags.`a\\`b` > 1", Field("tags", "a`b")),
        ("metrics.a.b > 1", M("a.b")),
        ("metric.x-y/z:w > 1", M("x-y/z:w")),
        ("param.lr > 1", P("lr")),
        ("tag.team > 1", Field("tags", "team")),
        ("Metrics.Loss > 1", M("Loss")),
        ("attributes.status > 1", A("status")),
        ("attribute.run_id > 1", A("id")),
        ("attributes.`start_time` > 1", A("start_time")),
        ("created > 1", A("start_time")),
        ("run_name > 1", A("name")),
        ("DURATION > 1", A("duration")),
    ],
)
def test_fields(text: str, field: Field) -> None:
    expr = parse_filter(text)
    assert isinstance(expr, Compare)
    assert expr.field == field


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("1", 1),
        ("-1", -1),
        ("1.5", 1.5),
        ("-2.5E+2", -250.0),
        ("1e-3", 0.001),
        (".5", 0.5),
        ("1.", 1.0),
        ("1234567890123", 1234567890123),
        ("'it\\'s'", "it's"),
        ('"say \\"hi\\""', 'say "hi"'),
        ("'a\\\\b'", "a\\b"),
        ("'50\\%'", "50\\%"),
        ('"it\'s"', "it's"),
        ("''", ""),
        ("true", True),
        ("FALSE", False),
    ],
)
def test_values(literal: str, value: object) -> None:
    expr = parse_filter(f"params.x = {literal}")
    assert isinstance(expr, Compare)
    assert expr.value == value
    assert type(expr.value) is type(value)


def test_operators() -> None:
    for op, canonical in [("=", "="), ("==", "="), ("!=", "!="), ("<>", "!=")]:
        assert parse_filter(f"params.x {op} 1") == Compare(P("x"), canonical, 1)  # type: ignore[arg-type]
    for op in ["<", "<=", ">", ">="]:
        assert parse_filter(f"params.x{op}1") == Compare(P("x"), op, 1)  # type: ignore[arg-type]
    assert parse_filter("params.x not in ('a', 2, null)") == InList(
        P("x"), ("a", 2, None), negated=True
    )
    assert parse_filter("params.x not like 'a%'") == Like(P("x"), "a%", negated=True)
    assert parse_filter("params.x is null") == IsNull(P("x"))
    assert parse_filter("params.x = null") == IsNull(P("x"))
    assert parse_filter("params.x != null") == IsNull(P("x"), negated=True)


def test_empty_filter_matches_all_and_is_falsy() -> None:
    for text in ["", "   ", "\n\t"]:
        assert parse_filter(text) == MatchAll()
        assert not parse_filter(text)
    assert parse_filter("params.x = 1")


def test_parse_is_cached() -> None:
    text = "metrics.val_auc > 0.9 and params.optimizer = 'adam'"
    assert parse_filter(text) is parse_filter(text)
    assert parse_order_by("metrics.x desc, name") is parse_order_by("metrics.x desc, name")


def test_order_by() -> None:
    assert parse_order_by(None) == ()
    assert parse_order_by("") == ()
    assert parse_order_by("metrics.val_auc DESC, start_time") == (
        OrderTerm(M("val_auc"), descending=True),
        OrderTerm(A("start_time")),
    )
    assert parse_order_by(["params.`learning rate` asc", "name desc, id"]) == (
        OrderTerm(P("learning rate")),
        OrderTerm(A("name"), descending=True),
        OrderTerm(A("id")),
    )


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("metrics.auc desc asc", 17, "expected 'asc', 'desc', ','"),
        ("metrics.auc,", 12, "expected a field"),
        ("metrics.auc, bogus", 13, "unknown field 'bogus'"),
        ("up", 0, "unknown field"),
    ],
)
def test_order_by_errors(text: str, position: int, reason: str) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_order_by(text)
    assert info.value.position == position
    assert reason in info.value.reason


def test_referenced_fields() -> None:
    text = "params.lr < 0.1 and (metrics.val_auc > 0.9 or not params.lr = 1) and status = 'failed'"
    assert referenced_fields(text) == (
        ("params", "lr"),
        ("metrics", "val_auc"),
        ("attr", "status"),
    )
    assert referenced_fields("") == ()


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("metrics.auc >", 13, "expected a value"),
        ("metrics.auc > ", 14, "expected a value"),
        ("params.lr < 0.01 and", 20, "expected a comparison"),
        ("params.lr < 0.01 or ()", 21, "expected a comparison"),
        ("(params.lr < 1", 0, "unbalanced parenthesis: '(' is never closed"),
        ("(params.lr < 1 params.x = 2)", 15, "expected 'and', 'or' or ')'"),
        ("params.lr < 1)", 13, "unbalanced parenthesis: ')' has no matching '('"),
        ("tags.x = 'abc", 9, "unterminated string"),
        ('tags.x = "abc\\"', 9, "unterminated string"),
        ("tags.`abc = 1", 5, "unterminated quoted key"),
        ("params.lr => 1", 10, "unknown operator '=>'"),
        ("params.lr ! 1", 10, "unknown operator '!'"),
        ("params.lr ~ 1", 10, "unexpected character '~'"),
        ("params.lr 1", 10, "expected an operator"),
        ("params.lr", 9, "expected an operator"),
        ("params.lr = 1.2.3", 12, "invalid number"),
        ("params.lr = 1abc", 12, "invalid number"),
        ("foo = 1", 0, "unknown field 'foo'"),
        ("attributes.foo = 1", 0, "unknown field"),
        ("params. = 1", 0, "expected a key after 'params.'"),
        ("status = running", 9, "quote it: 'running'"),
        ("params.x = 1 params.y = 2", 13, "expected 'and', 'or' or the end"),
        ("params.x < null", 11, "null can only be compared"),
        ("params.x in 1", 12, "expected '(' after 'in'"),
        ("params.x in (1 2)", 15, "expected ',' or ')'"),
        ("params.x in ()", 13, "expected a value"),
        ("params.x not = 1", 13, "expected 'in', 'like' or 'ilike' after 'not'"),
        ("params.x like 1", 14, "expected a quoted pattern"),
        ("params.x is 1", 12, "expected 'null' after 'is'"),
        ("and = 1", 0, "expected a comparison"),
        ("params.x = 1 and 'a'", 17, "expected a comparison"),
        ("(" * 100 + "params.x = 1" + ")" * 100, 24, "nested more than 24"),
        ("not " * 100 + "params.x = 1", 96, "nested more than 24"),
    ],
)
def test_syntax_errors_have_positions(text: str, position: int, reason: str) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter(text)
    err = info.value
    assert (err.position, err.text) == (position, text)
    assert reason in err.reason
    assert isinstance(err, InvalidArgumentError)
    assert "^" in str(err)


def test_first_error_in_reading_order_wins() -> None:
    # the parser error at 12 comes before the lexical error (unterminated string) at 20
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter("params.x = and tags.y = 'abc")
    assert info.value.position == 11


def test_unknown_field_message_lists_valid_fields() -> None:
    with pytest.raises(InvalidArgumentError, match=r"params\.<key>.*start_time"):
        parse_filter("strat_time > 1")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_garbage_parses_or_raises_syntax_error(text: str) -> None:
    for parse in (parse_filter, parse_order_by):
        with contextlib.suppress(FilterSyntaxError):
            parse(text)


_FIELD_TEXT = """
    params.lr params.optimizer params.batch params.missing metrics.`val/auc` metrics.val_auc
    metrics.loss metrics.missing tags.team tags.missing status name id parent_id start_time
    end_time duration
"""
_VALUE_TEXT = "1 -2.5 0.01 1e400 'x' 'adam' 'tracking' 'finished' '2026-11-01' true"
_fields = st.sampled_from([*_FIELD_TEXT.split(), 'params."learning rate"'])
_values = st.sampled_from(_VALUE_TEXT.split())
_comparisons = st.one_of(
    st.tuples(_fields, st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), _values).map(" ".join),
    st.builds(
        lambda f, neg, vs: f"{f} {'not ' * neg}in ({', '.join(vs)})",
        _fields,
        st.booleans(),
        st.lists(_values | st.just("null"), min_size=1, max_size=3),
    ),
    st.builds(
        lambda f, op, pattern: f"{f} {op} {pattern}",
        _fields,
        st.sampled_from(["like", "not like", "ilike", "not ilike"]),
        st.sampled_from(["'%a%'", "'t%'", "'_'"]),
    ),
    st.builds(lambda f, op: f"{f} {op}", _fields, st.sampled_from(["is null", "is not null"])),
)
_FILTERS = st.recursive(
    _comparisons,
    lambda inner: st.one_of(
        st.builds(lambda a, op, b: f"{a} {op} {b}", inner, st.sampled_from(["and", "or"]), inner),
        inner.map(lambda e: f"not ({e})"),
        inner.map(lambda e: f"({e})"),
    ),
    max_leaves=6,
)
_ORDERS = st.lists(
    st.builds(lambda f, d: f + d, _fields, st.sampled_from(["", " asc", " desc"])), max_size=3
).map(", ".join)


# ---------------------------------------------------------------------------------------------
# Behaviour against SQLite


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp() * 1000)


@contextlib.contextmanager
def _postgres_engine() -> Iterator[sa.Engine]:
    """An engine on a fresh schema of the server LUMINARY_TEST_POSTGRES_URL names."""
    base = os.environ.get("LUMINARY_TEST_POSTGRES_URL")
    if not base:
        require("postgres", "LUMINARY_TEST_POSTGRES_URL is not set")
    schema = f"lm_filter_{secrets.token_hex(6)}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    engine = sa.create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def engine(request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    """The same small dataset on SQLite and (when configured) on PostgreSQL."""
    if request.param == "sqlite":
        engine = sa.create_engine("sqlite://")
        yield from _filled(engine)
        engine.dispose()
    else:
        with _postgres_engine() as engine:
            yield from _filled(engine)


def _filled(engine: sa.Engine) -> Iterator[sa.Engine]:
    metadata.create_all(engine)
    t0, t2, t3, t4 = (ms(f"2026-{d}T00:00:00") for d in ("10-31", "11-02", "11-03", "11-04"))
    t1 = ms("2026-11-01T06:00:00")
    run_rows = [
        # id, project, name, status, parent, start, end (durations: 60 s, 120 s, -, 30 s, 10 s)
        ("r1", "p1", "alpha", "finished", None, t0, t0 + 60_000),
        ("r2", "p1", "beta", "failed", None, t1, t1 + 120_000),
        ("r3", "p1", "gamma", "running", "r1", t2, None),
        ("r4", "p1", "Delta run", "killed", "r1", t3, t3 + 30_000),
        ("r5", "p2", "alpha", "finished", None, t4, t4 + 10_000),
    ]
    param_rows = [
        ("r1", "lr", "float", "0.01", 0.01),
        ("r1", "optimizer", "str", "adam", None),
        ("r1", "learning rate", "float", "0.1", 0.1),
        ("r1", "batch", "int", "32", 32.0),
        ("r2", "lr", "float", "0.001", 0.001),
        ("r2", "optimizer", "str", "sgd", None),
        ("r2", "batch", "int", "64", 64.0),
        ("r3", "lr", "float", "0.1", 0.1),
        ("r3", "optimizer", "str", "adamw", None),
        ("r3", "flag", "bool", "true", 1.0),
        ("r3", "batch", "null", "null", None),
        ("r4", "lr", "str", "auto", None),
        ("r5", "lr", "float", "0.01", 0.01),
        ("r5", "optimizer", "str", "adam", None),
    ]
    metric_rows = [
        ("r1", "val_auc", 0.9),
        ("r1", "loss", 0.3),
        ("r1", "val/auc", 0.91),
        ("r2", "val_auc", None),  # NaN
        ("r2", "loss", 0.5),
        ("r3", "val_auc", 0.95),
        ("r3", "loss", float("inf")),
        ("r5", "val_auc", 0.99),
    ]
    tag_rows = [
        ("r1", "team", "tracking"),
        ("r1", "seed", "42"),
        ("r2", "team", "trigger"),
        ("r3", "team", "tracking"),
        ("r3", "mlflow.user", "ana"),
        ("r5", "team", "tracking"),
    ]
    with engine.begin() as conn:
        conn.execute(
            sa.insert(projects),
            [{"id": p, "name": p, "description": "", "created_ms": t0} for p in ("p1", "p2")],
        )
        conn.execute(
            sa.insert(runs),
            [
                dict(
                    zip(
                        ("id", "project_id", "name", "status", "parent_id", "start_ms", "end_ms"),
                        row,
                        strict=True,
                    )
                )
                for row in run_rows
            ],
        )
        conn.execute(
            sa.insert(params),
            [
                {"run_id": r, "key": k, "value_type": t, "value_text": txt, "value_num": num}
                for r, k, t, txt, num in param_rows
            ],
        )
        conn.execute(
            sa.insert(metric_series),
            [
                {"id": i, "run_id": r, "key": k, "last_value": v, "last_step": 0, "count": 1}
                for i, (r, k, v) in enumerate(metric_rows)
            ],
        )
        conn.execute(sa.insert(tags), [{"run_id": r, "key": k, "value": v} for r, k, v in tag_rows])
    yield engine


def search(
    engine: sa.Engine,
    filter: str | None = None,
    order_by: str | Sequence[str] | None = None,
    limit: int | None = None,
    offset: int = 0,
    project: str | None = "p1",
) -> list[str]:
    with engine.connect() as conn:
        stmt = compile_search(project, filter, order_by, limit, offset)
        return list(conn.execute(stmt).scalars())


# p1's default order is newest first: r4, r3, r2, r1.
@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        (None, ["r4", "r3", "r2", "r1"]),
        ("", ["r4", "r3", "r2", "r1"]),
        # params: numbers compare value_num, strings value_text
        ("params.lr < 0.05", ["r2", "r1"]),
        ("params.lr >= 0.01", ["r3", "r1"]),
        ("params.lr = 0.01", ["r1"]),
        ("params.lr = '0.01'", ["r1"]),
        ("params.optimizer = 'adam'", ["r1"]),
        ("params.optimizer > 'adam'", ["r3", "r2"]),
        ("params.`learning rate` = 0.1", ["r1"]),
        ("params.flag = true", ["r3"]),
        ("params.flag == 1", ["r3"]),
        ("params.lr = 'auto'", ["r4"]),
        # != needs the key present; a string-valued param is "not equal" to a number
        ("params.lr != 0.01", ["r4", "r3", "r2"]),
        ("params.batch != 32", ["r2"]),
        ("params.batch is null", ["r4", "r3"]),  # r3 logged batch=None
        ("params.batch is not null", ["r2", "r1"]),
        ("params.missing = 1", []),
        ("params.missing != 1", []),
        ("params.missing is null", ["r4", "r3", "r2", "r1"]),
        ("not params.lr < 0.05", ["r4", "r3"]),
        # metrics: latest value; NaN (NULL) and missing never match a comparison
        ("metrics.val_auc > 0.5", ["r3", "r1"]),
        ("metrics.val_auc != 0.9", ["r3"]),
        ("metrics.val_auc is null", ["r4", "r2"]),
        ("not metrics.val_auc > 0.5", ["r4", "r2"]),
        ("metrics.loss > 1e300", ["r3"]),
        ("metrics.loss >= 1e400", ["r3"]),  # 1e400 is +inf
        ("metrics.`val/auc` > 0.9", ["r1"]),
        ("metric.loss < 0.4 or metrics.loss = 0.5", ["r2", "r1"]),
        # tags: text; a number compares as its text
        ("tags.seed = 42", ["r1"]),
        ("tags.team = 'tracking'", ["r3", "r1"]),
        ("tags.team != 'tracking'", ["r2"]),
        ('tags."mlflow.user" = "ana"', ["r3"]),
        ("tags.team is null", ["r4"]),
        # in / not in
        ("params.optimizer in ('adam', 'sgd')", ["r2", "r1"]),
        ("params.optimizer not in ('adam', 'sgd')", ["r3"]),
        ("params.lr in (0.1, 'auto')", ["r4", "r3"]),
        ("metrics.val_auc in (0.9, null)", ["r4", "r2", "r1"]),
        ("metrics.val_auc not in (0.9, null)", ["r3"]),
        ("name in ('alpha', 'gamma')", ["r3", "r1"]),
        # like / ilike
        ("params.optimizer like 'adam%'", ["r3", "r1"]),
        ("params.optimizer not like 'adam%'", ["r2"]),
        ("tags.team ilike 'TRIG%'", ["r2"]),
        ("name like '%run'", ["r4"]),
        # attributes
        ("status = 'finished'", ["r1"]),
        ("attributes.status = 'FINISHED'", ["r1"]),
        ("status in ('failed', 'killed')", ["r4", "r2"]),
        ("status != 'running'", ["r4", "r2", "r1"]),
        ("id = 'r2'", ["r2"]),
        ("run_id in ('r2', 'r3', 'r5')", ["r3", "r2"]),
        ("parent_id = 'r1'", ["r4", "r3"]),
        ("parent_id is null", ["r2", "r1"]),
        ("parent_id != 'r1'", []),
        ("start_time >= '2026-11-01'", ["r4", "r3", "r2"]),
        ("start_time < '2026-11-01T06:00:00Z'", ["r1"]),
        ("start_time <= '2026-11-01T07:00:00+01:00'", ["r2", "r1"]),
        (f"created > {ms('2026-11-02T00:00:00')}", ["r4"]),
        ("end_time is null", ["r3"]),
        (f"end_time = {ms('2026-10-31T00:01:00')}", ["r1"]),
        ("duration > 45", ["r2", "r1"]),
        ("duration <= 30.5", ["r4"]),
        ("duration is null", ["r3"]),
        # combinations
        ("(status = 'finished' or status = 'failed') and params.lr < 0.005", ["r2"]),
        ("not (status = 'finished' or status = 'failed')", ["r4", "r3"]),
        ("params.lr < 0.05 and metrics.val_auc > 0 and tags.team = 'tracking'", ["r1"]),
    ],
)
def test_filter(engine: sa.Engine, filter: str | None, expected: list[str]) -> None:
    assert search(engine, filter) == expected


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        (None, ["r4", "r3", "r2", "r1"]),
        ("metrics.val_auc desc", ["r3", "r1", "r4", "r2"]),  # NULLs last, then id desc
        ("metrics.val_auc", ["r1", "r3", "r4", "r2"]),
        ("metrics.loss desc", ["r3", "r2", "r1", "r4"]),  # +inf first
        (["tags.team", "start_time desc"], ["r3", "r1", "r2", "r4"]),
        ("tags.team desc, start_time asc", ["r2", "r1", "r3", "r4"]),
        ("params.lr", ["r2", "r1", "r3", "r4"]),  # numbers, then text ("auto")
        ("params.lr desc", ["r3", "r1", "r2", "r4"]),
        ("duration desc", ["r2", "r1", "r4", "r3"]),
        ("start_time", ["r1", "r2", "r3", "r4"]),
        ("status", ["r2", "r1", "r4", "r3"]),
        ("parent_id, name desc", ["r3", "r4", "r2", "r1"]),  # "gamma" > "Delta run"
    ],
)
def test_order_by_sorts(
    engine: sa.Engine, order_by: str | list[str] | None, expected: list[str]
) -> None:
    assert search(engine, order_by=order_by) == expected


def test_limit_offset(engine: sa.Engine) -> None:
    assert search(engine, limit=2) == ["r4", "r3"]
    assert search(engine, limit=2, offset=1) == ["r3", "r2"]
    assert search(engine, limit=None, offset=3) == ["r1"]
    assert search(engine, limit=0) == []
    assert search(engine, "params.lr is not null", "metrics.val_auc desc", 2, 1) == ["r1", "r4"]
    with pytest.raises(InvalidArgumentError, match="out of range"):
        compile_search(None, None, None, -1)
    with pytest.raises(InvalidArgumentError, match="out of range"):
        compile_search(None, None, None, None, offset=-1)


def test_project_scoping(engine: sa.Engine) -> None:
    assert search(engine, project="p2") == ["r5"]
    assert search(engine, project="nope") == []
    assert search(engine, project=None) == ["r5", "r4", "r3", "r2", "r1"]
    assert search(engine, "params.lr = 0.01", project=None) == ["r5", "r1"]
    assert search(engine, "status = 'finished'", project="p2") == ["r5"]


def test_same_key_in_filter_and_order_by_joins_once(engine: sa.Engine) -> None:
    stmt = compile_search("p1", "metrics.val_auc > 0 or metrics.val_auc < 0", "metrics.val_auc", 10)
    assert str(stmt).count("JOIN") == 1
    assert search(engine, "metrics.val_auc > 0", "metrics.val_auc desc") == ["r3", "r1"]


@pytest.mark.parametrize(
    ("filter", "message"),
    [
        ("metrics.val_auc > 'high'", "metrics.val_auc is a number"),
        ("metrics.val_auc in (1, 'x')", "metrics.val_auc is a number"),
        ("status = 'done'", "running, finished, failed, killed"),
        ("status in ('running', 'scheduled')", "valid statuses"),
        ("status = 1", "valid statuses"),
        ("start_time > 'yesterday'", "ISO date"),
        ("end_time > true", "ISO date"),
        ("duration > '1h'", "duration is in seconds"),
        ("metrics.loss like '1%'", "like/ilike cannot apply to metrics.loss"),
        ("start_time like '2026%'", "only to params, tags"),
    ],
)
def test_semantic_errors(filter: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message) as info:
        compile_search(None, filter, None, None)
    assert not isinstance(info.value, FilterSyntaxError)


def test_renders_for_postgresql() -> None:
    stmt = compile_search(
        "p1",
        "params.lr != 0.01 and metrics.`val/auc` not in (1, 2) and tags.team ilike 'trig%' "
        "and duration > 5 and start_time > '2026-11-01' and not parent_id is null",
        ["params.lr desc", "metrics.`val/auc`"],
        10,
        5,
    )
    sql = str(stmt.compile(dialect=PG))
    assert sql.startswith("SELECT runs.id")
    assert sql.count("LEFT OUTER JOIN") == 3
    assert "ILIKE" in sql
    assert "DESC NULLS LAST" in sql
    assert "ASC NULLS LAST" in sql
    assert "runs.id DESC" in sql
    literal = str(stmt.compile(dialect=PG, compile_kwargs={"literal_binds": True}))
    assert "m1.last_value IN (1.0, 2.0)" in literal
    assert "p0.key = 'lr'" in literal
    assert literal.rstrip().endswith("LIMIT 10 OFFSET 5")


@settings(max_examples=200, deadline=None)
@given(_FILTERS, _ORDERS)
def test_generated_filters_run_and_not_is_the_exact_complement(
    engine: sa.Engine, filter: str, order_by: str
) -> None:
    parse_filter(filter)  # well-formed, so it parses
    parse_order_by(order_by)
    try:
        matched = search(engine, filter, order_by, project=None)
    except FilterSyntaxError:
        raise
    except InvalidArgumentError:  # e.g. a string compared with a metric
        return
    everything = search(engine, None, order_by, project=None)
    assert sorted(everything) == ["r1", "r2", "r3", "r4", "r5"]
    assert matched == [r for r in everything if r in matched]  # the same order, a subset
    rest = search(engine, f"not ({filter})", project=None)
    assert sorted(matched + rest) == sorted(everything)  # two-valued: no run is lost to NULL
