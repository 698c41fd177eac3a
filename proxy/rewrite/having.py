"""HAVING, evaluated by the proxy on the decrypted groups.

The backend cannot compare a HOM sum or an RND value with a constant, so the statement is
sent without its HAVING; every aggregate and grouped column the condition names is read too
(hidden select items, dropped before the client sees the row), and the decoder keeps the
groups whose condition is TRUE (SQL's three-valued logic: NULL drops the group, as MariaDB).
ORDER BY and LIMIT / OFFSET are then applied here as well: the backend would cut before the
filter.

    operands     aggregates (COUNT, SUM, AVG, MIN, MAX, in the select list or not), grouped
                 columns, select-list names and aliases, constants
    conditions   = <> <=> < <= > >=, [NOT] BETWEEN, [NOT] IN (constants), IS [NOT] NULL,
                 AND, OR, NOT, parentheses

Comparisons follow MariaDB: numbers exactly (Decimal), dates as dates, text by the column's
collation as the proxy's ORDER BY emulates it (`_bin`: PAD SPACE, otherwise ASCII case
folding). Constants are read from the statement's literals at bind time, so the template is
cached like any SELECT's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlglot import exp

from onion.encoding import Kind
from proxy.rewrite.errors import UnknownColumn, Unsupported, bad_constant
from proxy.rewrite.literals import Lit, column_value
from proxy.rewrite.predicate import COMPARISONS
from proxy.rewrite.resolve import Ctx, Scope, Source, constant, is_null
from proxy.schema import Column


@dataclass(frozen=True)
class Operand:
    """A value of the decoded row (`reader` index) or a constant (`lit` index), with what
    it is: a column's kind (and the column, for dates and collations), or a number."""

    reader: int | None = None
    lit: int | None = None
    negate: bool = False
    col: Column | None = None  # None: a number (COUNT, SUM, AVG)
    null: bool = False


Node = tuple[Any, ...]  # ("and"|"or", a, b) ("not", a) ("cmp", op, x, y) ("in", x, items)
# ("between", x, lo, hi) ("isnull", x) ("const", operand)


def plan_having(
    cond: exp.Expression,
    ctx: Ctx,
    scope: Scope,
    items: list[tuple[Any, str]],
    group_cols: list[tuple[Source, Column]],
    add_reader: Callable[[exp.Expression | tuple[Source, Column]], int],
) -> Node:
    """The condition as a tree over decoded-row positions. `add_reader` reads an aggregate
    or a grouped column as a hidden item and returns its position."""

    def operand(e: exp.Expression) -> Operand:
        while isinstance(e, exp.Paren):
            e = e.this
        if is_null(e):
            return Operand(null=True)
        c = constant(e, ctx)
        if c is not None:
            return Operand(lit=c[0], negate=c[1])
        if isinstance(e, exp.Column) and isinstance(e.this, exp.Identifier):
            if not e.table:
                for i, (x, name) in enumerate(items):
                    if name.lower() == e.name.lower():
                        return Operand(reader=i, col=_item_column(x, scope))
            src_col = scope.column(e, "having clause")
            for i, (x, _) in enumerate(items):
                if isinstance(x, tuple) and x[0] is src_col[0] and x[1].id == src_col[1].id:
                    return Operand(reader=i, col=src_col[1])
            if not any(s is src_col[0] and c.id == src_col[1].id for s, c in group_cols):
                raise UnknownColumn(e.sql("mysql"), "having clause")
            return Operand(reader=add_reader(src_col), col=src_col[1])
        from proxy.rewrite.select import AGGREGATES

        if isinstance(e, AGGREGATES):
            for i, (x, _) in enumerate(items):
                if not isinstance(x, tuple) and x == e:
                    return Operand(reader=i, col=_item_column(x, scope))
            return Operand(reader=add_reader(e), col=_item_column(e, scope))
        raise Unsupported(f"{type(e).__name__.upper()} in HAVING")

    return condition_tree(cond, operand, "HAVING")


def condition_tree(
    cond: exp.Expression, operand: Callable[[exp.Expression], Operand], clause: str
) -> Node:
    """A condition evaluated in the proxy as a tree over `operand`s (HAVING here, a derived
    table's outer WHERE in proxy.rewrite.derived)."""

    def walk(e: exp.Expression) -> Node:
        if isinstance(e, exp.Paren):
            return walk(e.this)
        if isinstance(e, exp.And | exp.Or):
            return ("and" if isinstance(e, exp.And) else "or", walk(e.this), walk(e.expression))
        if isinstance(e, exp.Not):
            return ("not", walk(e.this))
        op = COMPARISONS.get(type(e))
        if op is not None:
            return ("cmp", op, operand(e.this), operand(e.expression))
        if isinstance(e, exp.In):
            if e.args.get("query") is not None or not e.expressions:
                raise Unsupported(f"IN in {clause} with anything but constants")
            return ("in", operand(e.this), tuple(operand(x) for x in e.expressions))
        if isinstance(e, exp.Between):
            return ("between", operand(e.this), operand(e.args["low"]), operand(e.args["high"]))
        if isinstance(e, exp.Is) and is_null(e.expression):
            return ("isnull", operand(e.this))
        if isinstance(e, exp.Boolean):
            return ("bool", bool(e.this))
        return ("truth", operand(e))  # HAVING COUNT(*): true when not zero and not NULL

    return walk(cond)


def _item_column(x: Any, scope: Scope) -> Column | None:
    """The column whose kind a select item's values have (None: a number). MIN / MAX keep
    their argument's."""
    if isinstance(x, tuple):
        return x[1]
    if isinstance(x, exp.Min | exp.Max) and isinstance(x.this, exp.Column):
        return scope.column(x.this, "having clause")[1]
    return None


# ---- evaluation --------------------------------------------------------------------------------


def bind_having(tree: Node, lits: Sequence[Lit]) -> Callable[[tuple[Any, ...]], bool]:
    """The filter for decoded rows: True keeps the group."""
    fn = _compile(tree, lits)
    return lambda row: fn(row) is True


Value = Callable[[tuple[Any, ...]], Any]


def _compile(node: Node, lits: Sequence[Lit]) -> Callable[[tuple[Any, ...]], bool | None]:
    kind = node[0]
    if kind in ("and", "or"):
        a, b = _compile(node[1], lits), _compile(node[2], lits)
        return (lambda r: _and(a(r), b(r))) if kind == "and" else (lambda r: _or(a(r), b(r)))
    if kind == "not":
        a = _compile(node[1], lits)
        return lambda r: None if (v := a(r)) is None else not v
    if kind == "bool":
        return lambda r: node[1]
    if kind == "cmp":
        op, x, y = node[1], node[2], node[3]
        fx, fy = _pair(x, y, lits)
        if op == "<=>":
            return lambda r: _null_safe(fx(r), fy(r))
        cmp = _COMPARE[op]
        return lambda r: None if (a := fx(r)) is None or (b := fy(r)) is None else cmp(a, b)
    if kind == "in":
        x, items = node[1], node[2]
        fx = _value(x, _peer(x, items), lits)
        fs = [_value(i, x, lits) for i in items]

        def member(r: tuple[Any, ...]) -> bool | None:
            a = fx(r)
            if a is None:
                return None
            values = [f(r) for f in fs]
            if any(v is not None and v == a for v in values):
                return True
            return None if any(v is None for v in values) else False

        return member
    if kind == "between":
        x, lo, hi = node[1], node[2], node[3]
        fx = _value(x, _peer(x, (lo, hi)), lits)
        flo, fhi = _value(lo, x, lits), _value(hi, x, lits)
        ge, le = _COMPARE[">="], _COMPARE["<="]
        return lambda r: _and(_opt(ge, fx(r), flo(r)), _opt(le, fx(r), fhi(r)))
    if kind == "isnull":
        fx = _value(node[1], node[1], lits)
        return lambda r: fx(r) is None
    if kind == "truth":
        fx = _value(node[1], node[1], lits)
        return lambda r: None if (v := fx(r)) is None else bool(v)
    raise ValueError(kind)


def _peer(x: Operand, others: Sequence[Operand]) -> Operand:
    """What a constant is compared with decides how it is read."""
    if x.reader is not None:
        return x
    return next((o for o in others if o.reader is not None), x)


def _pair(x: Operand, y: Operand, lits: Sequence[Lit]) -> tuple[Value, Value]:
    if x.reader is None and y.reader is None:
        raise Unsupported("a HAVING comparison without an aggregate or column")
    if x.reader is not None and y.reader is not None and _kind(x) != _kind(y):
        raise Unsupported("comparing values of different types in HAVING")
    return _value(x, y, lits), _value(y, x, lits)


def _kind(o: Operand) -> str:
    if o.col is None:
        return "number"
    k = o.col.kind
    if k in (Kind.INT, Kind.UINT, Kind.DECIMAL):
        return "number"
    return {Kind.STRING: "text", Kind.DATE: "date", Kind.DATETIME: "datetime"}[Kind(k)]


def _text_key(col: Column) -> Callable[[str], Any]:
    if col.binary_collation():
        from proxy.rewrite.decode import bin_key

        return bin_key  # PAD SPACE: 'a\t' < 'a' (a stripped 'a\t' would sort after 'a')
    return lambda v: v.rstrip(" ").upper()


def _value(o: Operand, peer: Operand, lits: Sequence[Lit]) -> Value:
    """Comparable values: text through its collation key, numbers as Decimal or int."""
    if o.null:
        return lambda r: None
    ref = o if o.reader is not None else peer
    text = ref.col is not None and ref.col.kind == Kind.STRING
    key = _text_key(ref.col) if text and ref.col is not None else None
    if o.reader is not None:
        i = o.reader
        if key is not None:
            return lambda r: None if r[i] is None else key(r[i])
        return lambda r: r[i]
    assert o.lit is not None
    v = _constant(lits[o.lit], o.negate, ref)
    if key is not None and isinstance(v, str):
        v = key(v)
    return lambda r: v


def _constant(lit: Lit, negate: bool, peer: Operand) -> Any:
    kind = _kind(peer) if peer.reader is not None else "number"
    if kind == "number":
        text = lit.value.strip() if lit.is_string else lit.value
        try:
            d = Decimal(text)
        except InvalidOperation:
            raise bad_constant("HAVING", "not a number") from None
        if not d.is_finite():
            raise bad_constant("HAVING", "not a number")
        return -d if negate else d
    assert peer.col is not None
    return column_value(peer.col, lit, negate, store=False)


def _lt(a: Any, b: Any) -> bool:
    return bool(a < b)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: bool(a == b),
    "<>": lambda a, b: bool(a != b),
    "<": _lt,
    "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
}


def _null_safe(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return bool(a == b)


def _opt(f: Callable[[Any, Any], bool], a: Any, b: Any) -> bool | None:
    return None if a is None or b is None else f(a, b)


def _and(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def _or(a: bool | None, b: bool | None) -> bool | None:
    if a is True or b is True:
        return True
    return None if a is None or b is None else False
