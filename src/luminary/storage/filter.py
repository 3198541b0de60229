"""The run-search language: a filter and an order-by, parsed once and compiled to SQLAlchemy Core.

Filters look like MLflow's (``metrics.val_auc > 0.9 and params.optimizer = 'adam'``) with more
operators (``or``, ``not``, parentheses, ``in``, ``not in``, ``like``, ``ilike``, ``is [not]
null``). Grammar, keywords case-insensitive::

    filter     := [or_expr]                      (empty text matches every run)
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := unary ("and" unary)*
    unary      := "not" unary | "(" or_expr ")" | comparison
    comparison := field (OP value | ["not"] "in" "(" value ("," value)* ")"
                        | ["not"] ("like" | "ilike") STRING | "is" ["not"] "null")
    field      := (params|metrics|tags) "." (KEY | `KEY` | "KEY") | [attributes "."] ATTR
    value      := NUMBER | STRING | true | false | null
    order_by   := field ["asc" | "desc"] ("," field ["asc" | "desc"])*

Semantics. A missing param, metric or tag, and a NaN metric (stored as NULL), is null: every
comparison with it is false, ``is null`` is true. Each comparison is two-valued (never SQL NULL),
so ``not`` is an exact complement: ``not metrics.x > 1`` matches runs without ``x``, while
``metrics.x <= 1`` does not. Negative operators (``!=``, ``not in``, ``not like``) need the value
to be present: ``params.batch != 32`` is false for a run that has no ``batch``. ``x = null`` is
``x is null``. A param stored as None counts as null. Params compare ``value_num`` against
numbers and booleans (1/0) and ``value_text`` against strings, so ``params.lr = '0.01'`` (MLflow
style) and ``params.lr = 0.01`` both work. Tags and text attributes compare numbers as their text.
Status literals are case-insensitive (``'FINISHED'`` works). Beware: ``like`` is case-insensitive
for ASCII on SQLite and case-sensitive on PostgreSQL; use ``ilike`` to be portable.

Limits, so that every database runs what parses (SQLite joins at most 64 tables and nests
expressions at most 1000 deep): a filter has at most :data:`MAX_FILTER_CHARS` characters,
:data:`MAX_TERMS` comparisons, :data:`MAX_IN_VALUES` values in one ``in`` list and
:data:`MAX_DEPTH` levels of ``not``/parentheses; a filter and its order-by together name at most
:data:`MAX_KEYS` distinct params, metrics and tags, and an order-by has at most
:data:`MAX_ORDER_TERMS` terms. Beyond a limit the error names it; split such a search in two.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NoReturn, TypeAlias

import sqlalchemy as sa
from sqlalchemy.sql.selectable import NamedFromClause

from luminary._bounds import check_int
from luminary._clock import to_ms
from luminary.errors import FilterSyntaxError, InvalidArgumentError
from luminary.storage.schema import RUN_STATUSES, metric_series, params, runs, tags

__all__ = [
    "And", "Compare", "Expr", "Field", "InList", "IsNull", "Like", "MatchAll", "Not", "Or",
    "MAX_DEPTH", "MAX_FILTER_CHARS", "MAX_IN_VALUES", "MAX_KEYS", "MAX_ORDER_TERMS", "MAX_TERMS",
    "OrderTerm", "compile_search", "parse_filter", "parse_order_by", "referenced_fields",
]  # fmt: skip

FieldKind = Literal["params", "metrics", "tags", "attr"]
CompareOp = Literal["=", "!=", "<", "<=", ">", ">="]
Value: TypeAlias = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Field:
    kind: FieldKind
    key: str  # for "attr": the canonical attribute name (id, name, status, ...)


@dataclass(frozen=True, slots=True)
class Compare:
    field: Field
    op: CompareOp
    value: str | int | float | bool


@dataclass(frozen=True, slots=True)
class InList:
    field: Field
    values: tuple[Value, ...]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Like:
    field: Field
    pattern: str
    case_insensitive: bool = False
    negated: bool = False


@dataclass(frozen=True, slots=True)
class IsNull:
    field: Field
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class MatchAll:
    """The empty filter. Falsy, so ``if not parse_filter(text)`` reads "no filter"."""

    def __bool__(self) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class OrderTerm:
    field: Field
    descending: bool = False


Expr: TypeAlias = Compare | InList | Like | IsNull | Not | And | Or | MatchAll

# ---------------------------------------------------------------------------------------------
# Tokenizer

_KINDS: dict[str, FieldKind] = {
    "params": "params", "param": "params", "metrics": "metrics", "metric": "metrics",
    "tags": "tags", "tag": "tags",
}  # fmt: skip
_ATTRS = {a: a for a in ("name", "status", "id", "parent_id", "start_time", "end_time", "duration")}
_ATTRS |= {"run_name": "name", "run_id": "id", "created": "start_time"}
_VALID_FIELDS = (
    "params.<key>, metrics.<key>, tags.<key> or an attribute: "
    "name, status, id (run_id), parent_id, start_time (created), end_time, duration"
)
_RESERVED = frozenset({"and", "or", "not", "in", "like", "ilike", "is", "null", "true", "false"})
_OPS: dict[str, CompareOp] = {
    "=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">=",
}  # fmt: skip
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_\-./:]*")
_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_OPCHARS = re.compile(r"[=!<>]+")
MAX_DEPTH = 24
MAX_FILTER_CHARS = 20_000
MAX_TERMS = 200
MAX_IN_VALUES = 1_000
MAX_KEYS = 32
MAX_ORDER_TERMS = 16


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # word, qfield, num, str, op, "(", ")", ",", end, error
    pos: int
    text: str  # source text; for "error" the reason; for "qfield" the prefix
    value: str | int | float = ""  # num/str value, op canonical form, qfield key


def _quoted(text: str, start: int) -> tuple[str, int] | None:
    """Reads the quoted text opening at ``start``; backslash escapes the quote and itself."""
    quote, out, i = text[start], [], start + 1
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in (quote, "\\"):
            out.append(text[i + 1])
            i += 2
        elif c == quote:
            return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    return None


def _tokens(text: str) -> Iterator[_Tok]:
    """Yields tokens, then "end"; a lexical error becomes a final "error" token, so that the
    parser reports the first problem in reading order."""
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            yield _Tok("end", n, "")
            return
        c = text[i]
        if c in "(),":
            yield _Tok(c, i, c)
            i += 1
        elif m := _WORD.match(text, i):
            word, i = m.group(), m.end()
            prefix = word[:-1]
            if word.endswith(".") and "." not in prefix and i < n and text[i] in '`"':
                got = _quoted(text, i)
                if got is None:
                    yield _Tok("error", i, "unterminated quoted key")
                    return
                yield _Tok("qfield", m.start(), prefix, got[0])
                i = got[1]
            else:
                yield _Tok("word", m.start(), word)
        elif m := _NUMBER.match(text, i):
            s = m.group()
            if m.end() < n and (text[m.end()].isalnum() or text[m.end()] in "_."):
                yield _Tok("error", i, f"invalid number {text[i : m.end() + 1]!r}")
                return
            # Integers stay exact up to 18 digits (e.g. times in ms); longer ones become floats.
            exact = len(s.lstrip("-")) <= 18 and not any(ch in s for ch in ".eE")
            yield _Tok("num", i, s, int(s) if exact else float(s))
            i = m.end()
        elif c in "'\"":
            got = _quoted(text, i)
            if got is None:
                yield _Tok("error", i, "unterminated string")
                return
            yield _Tok("str", i, text[i : got[1]], got[0])
            i = got[1]
        elif m := _OPCHARS.match(text, i):
            if m.group() not in _OPS:
                valid = "=, ==, !=, <>, <, <=, >, >="
                yield _Tok("error", i, f"unknown operator {m.group()!r} (valid: {valid})")
                return
            yield _Tok("op", i, m.group(), _OPS[m.group()])
            i = m.end()
        else:
            yield _Tok("error", i, f"unexpected character {c!r}")
            return


# ---------------------------------------------------------------------------------------------
# Parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        if len(text) > MAX_FILTER_CHARS:
            msg = (
                f"the filter or order-by {text[:40]!r}... is {len(text)} characters long, over "
                f"the limit of {MAX_FILTER_CHARS}; split the search in two"
            )
            raise InvalidArgumentError(msg)
        self.toks = list(_tokens(text))
        self.i = 0
        self.depth = 0
        self.terms = 0

    def fail(self, reason: str, pos: int) -> NoReturn:
        raise FilterSyntaxError(reason, self.text, pos)

    def peek(self) -> _Tok:
        tok = self.toks[self.i]
        if tok.kind == "error":
            self.fail(tok.text, tok.pos)
        return tok

    def next(self) -> _Tok:
        tok = self.peek()
        if tok.kind != "end":
            self.i += 1
        return tok

    @staticmethod
    def kw(tok: _Tok, *words: str) -> bool:
        return tok.kind == "word" and tok.text.lower() in words

    def filter(self) -> Expr:
        if self.peek().kind == "end":
            return MatchAll()
        expr = self.or_expr()
        tok = self.peek()
        if tok.kind == ")":
            self.fail("unbalanced parenthesis: ')' has no matching '('", tok.pos)
        if tok.kind != "end":
            self.fail("expected 'and', 'or' or the end of the filter", tok.pos)
        _check_keys({(f.kind, f.key) for f in _walk(expr)})
        return expr

    def or_expr(self) -> Expr:
        items = [self.and_expr()]
        while self.kw(self.peek(), "or"):
            self.next()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Expr:
        items = [self.unary()]
        while self.kw(self.peek(), "and"):
            self.next()
            items.append(self.unary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self) -> Expr:
        tok = self.peek()
        if self.depth >= MAX_DEPTH:
            self.fail(f"filter nested more than {MAX_DEPTH} levels deep", tok.pos)
        if self.kw(tok, "not") or tok.kind == "(":
            self.next()
            self.depth += 1
            if tok.kind == "(":
                inner = self.or_expr()
                close = self.peek()
                if close.kind == "end":
                    self.fail("unbalanced parenthesis: '(' is never closed", tok.pos)
                if close.kind != ")":
                    self.fail("expected 'and', 'or' or ')'", close.pos)
                self.next()
            else:
                inner = Not(self.unary())
            self.depth -= 1
            return inner
        return self.comparison()

    def field(self, what: str) -> Field:
        tok = self.next()
        if tok.kind not in ("word", "qfield") or self.kw(tok, *_RESERVED):
            example = "such as metrics.val_auc > 0.9" if what == "a comparison" else "to order by"
            self.fail(f"expected {what} ({example}; fields are {_VALID_FIELDS})", tok.pos)
        if tok.kind == "qfield":
            prefix, key = tok.text, str(tok.value)
        else:
            prefix, dot, key = tok.text.partition(".")
            if not dot:
                prefix, key = "attributes", tok.text
        kind = _KINDS.get(prefix.lower())
        if kind is not None:
            if not key:
                self.fail(f"expected a key after {prefix + '.'!r}", tok.pos)
            return Field(kind, key)
        if prefix.lower() in ("attributes", "attribute") and key.lower() in _ATTRS:
            return Field("attr", _ATTRS[key.lower()])
        self.fail(f"unknown field {tok.text!r}; valid fields are {_VALID_FIELDS}", tok.pos)

    def value(self) -> Value:
        tok = self.next()
        if tok.kind in ("num", "str"):
            return tok.value
        if self.kw(tok, "true", "false", "null"):
            return {"true": True, "false": False, "null": None}[tok.text.lower()]
        hint = f"; to compare with text, quote it: '{tok.text}'" if tok.kind == "word" else ""
        reason = "expected a value (a number, a 'quoted string', true, false or null)"
        self.fail(reason + hint, tok.pos)

    def comparison(self) -> Expr:
        self.terms += 1
        if self.terms > MAX_TERMS:
            reason = f"more than {MAX_TERMS} comparisons; split the search in two or use 'in'"
            self.fail(reason, self.peek().pos)
        field = self.field("a comparison")
        op = self.next()
        if op.kind == "op":
            at = self.peek().pos
            value = self.value()
            if value is None:
                if op.value not in ("=", "!="):
                    self.fail("null can only be compared with =, != or 'is'", at)
                return IsNull(field, negated=op.value == "!=")
            return Compare(field, _OPS[op.text], value)
        negated = self.kw(op, "not")
        if negated:
            op = self.next()
            if not self.kw(op, "in", "like", "ilike"):
                self.fail("expected 'in', 'like' or 'ilike' after 'not'", op.pos)
        if self.kw(op, "in"):
            if (paren := self.next()).kind != "(":
                self.fail("expected '(' after 'in'", paren.pos)
            values = [self.value()]
            while (sep := self.next()).kind == ",":
                if len(values) >= MAX_IN_VALUES:
                    self.fail(f"an 'in' list holds at most {MAX_IN_VALUES} values", sep.pos)
                values.append(self.value())
            if sep.kind != ")":
                self.fail("expected ',' or ')' in the 'in' list", sep.pos)
            return InList(field, tuple(values), negated)
        if self.kw(op, "like", "ilike"):
            pattern = self.next()
            if pattern.kind != "str":
                self.fail("expected a quoted pattern such as 'adam%'", pattern.pos)
            return Like(field, str(pattern.value), op.text.lower() == "ilike", negated)
        if self.kw(op, "is"):
            negated = self.kw(self.peek(), "not")
            if negated:
                self.next()
            if not self.kw(null := self.next(), "null"):
                self.fail("expected 'null' after 'is'", null.pos)
            return IsNull(field, negated)
        valid = "=, !=, <, <=, >, >=, in, not in, like, ilike, is null, is not null"
        self.fail(f"expected an operator ({valid})", op.pos)

    def order_by(self) -> tuple[OrderTerm, ...]:
        terms: list[OrderTerm] = []
        if self.peek().kind == "end":
            return ()
        while True:
            field = self.field("a field")
            descending = False
            if self.kw(self.peek(), "asc", "desc"):
                descending = self.next().text.lower() == "desc"
            terms.append(OrderTerm(field, descending))
            if len(terms) > MAX_ORDER_TERMS:
                self.fail(f"an order-by has at most {MAX_ORDER_TERMS} terms", self.peek().pos)
            tok = self.next()
            if tok.kind == "end":
                return tuple(terms)
            if tok.kind != ",":
                self.fail("expected 'asc', 'desc', ',' or the end", tok.pos)


@functools.lru_cache(maxsize=1024)
def parse_filter(text: str) -> Expr:
    """Parses a filter (cached on the text); empty text gives the falsy ``MatchAll()``."""
    return _Parser(text).filter()


@functools.lru_cache(maxsize=1024)
def _parse_order_text(text: str) -> tuple[OrderTerm, ...]:
    return _Parser(text).order_by()


def parse_order_by(spec: str | Sequence[str] | None) -> tuple[OrderTerm, ...]:
    """Parses ``"metrics.auc desc, start_time"`` or a list of such strings."""
    if spec is None:
        return ()
    if isinstance(spec, str):
        return _parse_order_text(spec)
    return tuple(term for part in spec for term in _parse_order_text(part))


def _check_keys(fields: set[tuple[str, str]]) -> None:
    keys = sorted(f"{kind}.{key}" for kind, key in fields if kind != "attr")
    if len(keys) > MAX_KEYS:
        shown = ", ".join(keys[:5])
        msg = (
            f"the search names {len(keys)} distinct params, metrics and tags ({shown}, ...); "
            f"a filter and its order-by may name at most {MAX_KEYS}; split the search in two"
        )
        raise InvalidArgumentError(msg)


def _walk(expr: Expr) -> Iterator[Field]:
    if isinstance(expr, Not):
        yield from _walk(expr.operand)
    elif isinstance(expr, And | Or):
        for operand in expr.operands:
            yield from _walk(operand)
    elif not isinstance(expr, MatchAll):
        yield expr.field


@functools.lru_cache(maxsize=1024)
def referenced_fields(text: str) -> tuple[tuple[str, str], ...]:
    """The distinct (kind, key) pairs a filter uses, in order; attributes have kind "attr"."""
    return tuple(dict.fromkeys((f.kind, f.key) for f in _walk(parse_filter(text))))


# ---------------------------------------------------------------------------------------------
# Compiler

_Col: TypeAlias = sa.ColumnElement[Any]
_Cond: TypeAlias = sa.ColumnElement[bool]
_DURATION_MS: _Col = runs.c.end_ms - runs.c.start_ms
_ATTR_COLS: dict[str, _Col] = {
    "id": runs.c.id, "name": runs.c.name, "status": runs.c.status, "parent_id": runs.c.parent_id,
    "start_time": runs.c.start_ms, "end_time": runs.c.end_ms, "duration": _DURATION_MS,
}  # fmt: skip
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {  # "!=" is built from "="
    "=": operator.eq, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}  # fmt: skip
_STATUSES = RUN_STATUSES


def _name(f: Field) -> str:
    return f.key if f.kind == "attr" else f"{f.kind}.{f.key}"


def _present(col: _Col) -> _Cond:
    """``col IS NOT NULL``, left out for NOT NULL columns of ``runs``."""
    required = isinstance(col, sa.Column) and col.table is runs and not col.nullable
    return sa.true() if required else col.is_not(None)


def _as_text(v: str | int | float | bool) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return v if isinstance(v, str) else repr(v)


class _Compiler:
    def __init__(self) -> None:
        self.joins: dict[tuple[str, str], NamedFromClause] = {}

    def table(self, f: Field) -> NamedFromClause:
        if (f.kind, f.key) not in self.joins:
            base = {"params": params, "metrics": metric_series, "tags": tags}[f.kind]
            self.joins[f.kind, f.key] = base.alias(f"{f.kind[0]}{len(self.joins)}")
        return self.joins[f.kind, f.key]

    def from_clause(self) -> sa.FromClause:
        joined: sa.FromClause = runs
        for (_, key), t in self.joins.items():
            on = sa.and_(t.c.run_id == runs.c.id, t.c["key"] == key)
            joined = joined.outerjoin(t, on)
        return joined

    def columns(self, f: Field) -> list[_Col]:
        """The columns a field sorts by (params: the number, then the text)."""
        if f.kind == "attr":
            return [_ATTR_COLS[f.key]]
        t = self.table(f)
        cols = {"params": ["value_num", "value_text"], "metrics": ["last_value"], "tags": ["value"]}
        return [t.c[name] for name in cols[f.kind]]

    def is_null(self, f: Field) -> _Cond:
        if f.kind == "params":
            vtype = self.table(f).c.value_type
            return sa.or_(vtype.is_(None), vtype == "null")
        return self.columns(f)[0].is_(None)

    def operand(self, f: Field, v: str | int | float | bool) -> tuple[_Col, Any]:
        """The column to compare a literal with, and the literal converted for it."""
        cols = self.columns(f)
        if f.kind == "params":
            return (cols[1], v) if isinstance(v, str) else (cols[0], float(v))
        if f.kind == "metrics":
            if isinstance(v, str):
                msg = f"metrics.{f.key} is a number; compare it with a number, not {v!r}"
                raise InvalidArgumentError(msg)
            return cols[0], float(v)
        if f.key == "status":
            if not isinstance(v, str) or v.lower() not in _STATUSES:
                msg = f"unknown status {v!r}; valid statuses: {', '.join(_STATUSES)}"
                raise InvalidArgumentError(msg)
            return cols[0], v.lower()
        if f.key in ("start_time", "end_time"):
            return cols[0], _time_ms(f.key, v)
        if f.key == "duration":
            if isinstance(v, int | float) and not isinstance(v, bool):
                return cols[0], v * 1000.0
            msg = f"duration is in seconds; compare it with a number, not {v!r}"
            raise InvalidArgumentError(msg)
        return cols[0], _as_text(v)

    def text_column(self, f: Field) -> _Col:
        if f.kind in ("params", "tags") or f.key in ("name", "status", "id", "parent_id"):
            return self.columns(f)[-1]
        valid = "params, tags, name, status, id and parent_id"
        msg = f"like/ilike cannot apply to {_name(f)}; only to {valid}"
        raise InvalidArgumentError(msg)

    def absent_or_not(self, f: Field, positive: _Cond) -> _Cond:
        """A negative operator: the value is present and ``positive`` is false."""
        return sa.and_(sa.not_(self.is_null(f)), sa.not_(positive))

    def condition(self, e: Expr, exact: bool = False) -> _Cond:
        """SQL for ``e``. Under ``not`` (``exact``) every comparison must be two-valued, so a
        missing value is tested explicitly; elsewhere SQL's NULL already excludes the run, and
        leaving the test out keeps the planner's row estimates (and its choice of index) right.
        """
        if isinstance(e, MatchAll):
            return sa.true()
        if isinstance(e, And | Or):
            combine = sa.and_ if isinstance(e, And) else sa.or_
            return combine(*(self.condition(x, exact) for x in e.operands))
        if isinstance(e, Not):
            return sa.not_(self.condition(e.operand, exact=True))
        if isinstance(e, IsNull):
            return sa.not_(self.is_null(e.field)) if e.negated else self.is_null(e.field)

        def present(col: _Col) -> _Cond:
            return _present(col) if exact else sa.true()

        if isinstance(e, Compare):
            col, v = self.operand(e.field, e.value)
            if e.op == "!=":
                return self.absent_or_not(e.field, sa.and_(_present(col), col == v))
            return sa.and_(present(col), _COMPARE[e.op](col, v))
        if isinstance(e, Like):
            col = self.text_column(e.field)
            match = col.ilike(e.pattern) if e.case_insensitive else col.like(e.pattern)
            if e.negated:
                return self.absent_or_not(e.field, sa.and_(_present(col), match))
            return sa.and_(present(col), match)
        groups: list[tuple[_Col, list[Any]]] = []  # InList: one IN per column compared
        for value in e.values:
            if value is not None:
                col, v = self.operand(e.field, value)
                group = next((g for g in groups if g[0] is col), None)
                if group is None:
                    groups.append(group := (col, []))
                group[1].append(v)
        if e.negated:
            parts = [sa.and_(_present(col), col.in_(vs)) for col, vs in groups]
        else:
            parts = [sa.and_(present(col), col.in_(vs)) for col, vs in groups]
        if None in e.values:
            parts.append(self.is_null(e.field))
        positive = sa.or_(*parts)
        return self.absent_or_not(e.field, positive) if e.negated else positive

    def order(self, term: OrderTerm) -> list[_Col]:
        cols = self.columns(term.field)
        return [(c.desc() if term.descending else c.asc()).nulls_last() for c in cols]


def _time_ms(name: str, v: str | int | float | bool) -> int | float:
    if isinstance(v, int | float) and not isinstance(v, bool):
        return v
    try:
        return to_ms(datetime.fromisoformat(str(v)))  # naive means UTC
    except ValueError:
        pass
    msg = (
        f"{name} must be an ISO date or datetime ('2026-11-01', '2026-11-01T12:00:00Z') "
        f"or milliseconds since the epoch, not {v!r}"
    )
    raise InvalidArgumentError(msg)


def compile_search(
    project_id: str | Sequence[str] | None,
    filter: str | None,
    order_by: str | Sequence[str] | None,
    limit: int | None,
    offset: int = 0,
) -> sa.Select[Any]:
    """A SELECT of ``runs.c.id`` for the runs matching ``filter``, sorted and paged.

    Default order: newest first (``start_time desc``); the run id (descending) always breaks ties.
    NULLs (missing or NaN values) sort last in either direction.
    """
    if limit is not None:
        check_int("limit", limit, low=0)
    check_int("offset", offset, low=0)
    compiler = _Compiler()
    expr = parse_filter(filter or "")
    terms = parse_order_by(order_by)
    _check_keys(
        {(f.kind, f.key) for f in _walk(expr)} | {(t.field.kind, t.field.key) for t in terms}
    )
    where = compiler.condition(expr) if expr else None
    order = [col for term in terms for col in compiler.order(term)]
    order = order or [runs.c.start_ms.desc()]
    stmt = sa.select(runs.c.id).select_from(compiler.from_clause())
    if isinstance(project_id, str):
        stmt = stmt.where(runs.c.project_id == project_id)
    elif project_id is not None:
        stmt = stmt.where(runs.c.project_id.in_(list(project_id)))
    if where is not None:
        stmt = stmt.where(where)
    stmt = stmt.order_by(*order, runs.c.id.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    return stmt.offset(offset) if offset else stmt
