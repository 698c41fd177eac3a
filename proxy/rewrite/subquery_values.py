"""Subquery values as constants of the outer statement (proxy.rewrite.subquery): a value
decrypted by the proxy written back into SQL, and comparisons with numbers an encrypted
column cannot hold rewritten into comparisons with numbers it can (MariaDB compares
exactly; the onions only know the column's own values)."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from sqlglot import exp

from onion.encoding import Kind
from proxy.rewrite.errors import Unsupported
from proxy.rewrite.predicate import COMPARISONS
from proxy.schema import Column

# MySQL column types whose text-protocol values are numbers (include/mysql_com.h).
_NUMERIC_TYPES = frozenset({0, 1, 2, 3, 4, 5, 8, 9, 13, 246})
_BINARY_CHARSET = 63


def typed_value(type_code: int, charset: int, raw: bytes | str | None) -> Any:
    """A text-protocol value of a pass-through result (a table the proxy did not create) as
    the Python value substituted for it: numbers stay numbers, the rest is text."""
    if raw is None:
        return None
    text = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw
    if type_code in _NUMERIC_TYPES:
        return Decimal(text) if any(ch in text for ch in ".eE") else int(text)
    if charset == _BINARY_CHARSET and type_code not in (7, 10, 11, 12):
        return raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogateescape")
    return text


def literal(v: Any) -> exp.Expression:
    if v is None:
        return exp.Null()
    if isinstance(v, bool):
        return exp.Literal.number(int(v))
    if isinstance(v, int):
        return exp.Literal.number(v)
    if isinstance(v, Decimal):
        return exp.Literal.number(format(v, "f"))
    if isinstance(v, float):
        return exp.Literal.number(repr(v))
    if isinstance(v, dt.datetime):
        return exp.Literal.string(v.isoformat(sep=" "))
    if isinstance(v, dt.date):
        return exp.Literal.string(v.isoformat())
    if isinstance(v, str):
        if any("\udc80" <= ch <= "\udcff" for ch in v):
            raise Unsupported("a subquery value that is not UTF-8 text")
        return exp.Literal.string(v)
    raise Unsupported("a subquery value of a binary type")


NUMBERS = (Kind.INT, Kind.UINT, Kind.DECIMAL)


def bounds(col: Column) -> tuple[Decimal, Decimal, Decimal]:
    """(smallest, largest value, step) of an integer or DECIMAL column."""
    if col.kind == Kind.DECIMAL:
        step = Decimal(1).scaleb(-col.scale)
        hi = Decimal(10) ** (col.precision - col.scale) - step
        return (Decimal(0) if col.unsigned else -hi), hi, step
    if col.kind == Kind.UINT:
        return Decimal(0), Decimal((1 << col.bits) - 1), Decimal(1)
    return Decimal(-(1 << (col.bits - 1))), Decimal((1 << (col.bits - 1)) - 1), Decimal(1)


def exact(col: Column, v: Any) -> bool:
    """Whether the column can hold the number v exactly (anything else is left to the
    rewrite of constants, which refuses what it cannot encrypt)."""
    if not isinstance(v, int | Decimal) or isinstance(v, bool):
        return True
    lo, hi, step = bounds(col)
    d = Decimal(v)
    return lo <= d <= hi and d % step == 0


def inexact(t: exp.Column, col: Column, op: str, v: Any) -> exp.Expression:
    """`t <op> v` for a number v the column cannot hold (more decimals than its scale, or
    outside its range), as comparisons with constants it can: MariaDB compares exactly, the
    onions only know the column's own values. NULL stays NULL; the onion is the one the
    original comparison needed (equality: Eq, ranges: Ord)."""
    lo, hi, step = bounds(col)
    d = Decimal(v)

    def cmp(kind: type[exp.Expression], x: Decimal) -> exp.Expression:
        value = int(x) if col.kind != Kind.DECIMAL else x
        return kind(this=t.copy(), expression=literal(value))

    if op == "<=>":
        return exp.false()
    if op == "=":  # never TRUE: FALSE, NULL for a NULL t
        return exp.and_(cmp(exp.EQ, lo), cmp(exp.NEQ, lo))
    if op == "<>":  # TRUE, NULL for a NULL t
        return exp.or_(cmp(exp.EQ, lo), cmp(exp.NEQ, lo))
    if op in ("<", "<="):
        if d > hi:
            return cmp(exp.GTE, lo)
        if d < lo:
            return cmp(exp.LT, lo)
        return cmp(exp.LTE, (d / step).to_integral_value(rounding=ROUND_FLOOR) * step)
    if d < lo:
        return cmp(exp.GTE, lo)
    if d > hi:
        return cmp(exp.LT, lo)
    return cmp(exp.GTE, (d / step).to_integral_value(rounding=ROUND_CEILING) * step)


def quantified(
    t: exp.Column, op: str, any_: bool, col: Column | None, values: list[Any]
) -> exp.Expression:
    """`t <op> ANY / ALL (values)` as SQL defines it (ANY: some comparison TRUE, ALL: every
    one; NULL where a NULL leaves it open; no values: FALSE / TRUE), in comparisons with
    constants the ordinary rewrite encrypts."""
    if not values:
        return exp.false() if any_ else exp.true()
    if (op == "=" and any_) or (op == "<>" and not any_):  # = ANY is IN, <> ALL is NOT IN
        kept = [v for v in values if col is None or exact(col, v)]
        if not kept:
            member = inexact(t.copy(), col, "=", Decimal("0.5")) if col else exp.false()
        else:
            member = exp.In(this=t.copy(), expressions=[literal(v) for v in kept])
        return member if any_ else exp.not_(exp.paren(member))
    join = exp.or_ if any_ else exp.and_
    known = [v for v in values if v is not None]
    null = exp.EQ(this=t.copy(), expression=exp.Null())  # NULL, whatever t is
    if not known:
        return null

    def cmp(v: Any) -> exp.Expression:
        if col is not None and not exact(col, v):
            return exp.paren(inexact(t.copy(), col, op, v))
        kind = {v2: k for k, v2 in COMPARISONS.items()}[op]
        return kind(this=t.copy(), expression=literal(v))

    if op in ("=", "<>") or any(isinstance(v, str) for v in known):
        # = ALL, <> ANY, and text (whose order is the collation's): one comparison each
        out = join(*[cmp(v) for v in known])
    else:  # numbers and dates: the bound that decides
        low = op in ("<", "<=")
        out = cmp((max if low == any_ else min)(known))
    return join(out, null) if len(known) < len(values) else out
