"""UNION [ALL | DISTINCT] of SELECTs on encrypted tables, combined by the proxy.

The branches' ciphertexts cannot be compared by the backend (each table and column has keys
of its own, RND values are never equal), so each branch is planned and run as a statement of
its own and the decrypted rows are combined here, left to right as MariaDB does:

    A UNION ALL B           A's rows, then B's
    A UNION B               the rows so far and B's, deduplicated (first occurrence kept;
                            text compared by its collation as the proxy's sort emulates it)
    ... ORDER BY / LIMIT    sorted (result column names or positions) and cut here

Result metadata is MariaDB's for a UNION: names from the first branch, no table or column
of origin (the column name as org_name when MariaDB goes through a temporary table: DISTINCT
or ORDER BY), NOT NULL when no branch can be NULL, the longest length, the flags and types
MariaDB gives (BINARY on numbers without a temporary table, TEXT as MEDIUM_BLOB ...).
Branches whose columns differ in type, sign, scale or character set are refused (MariaDB
would convert them to a common type this module does not reproduce), as are branches on
tables the proxy did not create mixed with its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlglot import exp

from proxy.protocol.errors import MysqlError
from proxy.rewrite.decode import (
    BINARY_FLAG,
    BLOB_FLAG,
    NOT_FIXED_DEC,
    NOT_NULL_FLAG,
    T_BLOB,
    T_DATE,
    T_DATETIME,
    UNSIGNED_FLAG,
    Decoder,
    OutCol,
    SortKey,
    _sort_key,
)
from proxy.rewrite.errors import Unsupported
from proxy.rewrite.insert import only
from proxy.rewrite.plan import UnionOf
from proxy.rewrite.resolve import Ctx

_TEXT_TYPES = (T_BLOB, 253, 254)  # TEXT, VARCHAR, CHAR as the decoders describe them
T_MEDIUM_BLOB = 250


def _branches(node: exp.Expression) -> tuple[list[exp.Select], list[bool]]:
    """The SELECTs left to right, and for each after the first whether its UNION is
    DISTINCT (sqlglot nests `A UNION B UNION C` as ((A, B), C); a branch with its own
    ORDER BY / LIMIT is parenthesized: a Subquery)."""
    if isinstance(node, exp.Subquery) and isinstance(node.this, exp.Select):
        only(node, {"this"}, "UNION branch")
        return [node.this], []
    if isinstance(node, exp.Select):
        return [node], []
    if type(node) is not exp.Union:
        raise Unsupported(f"{node.key.upper()} in a UNION")
    only(node, {"this", "expression", "distinct"}, "UNION branch")
    return _split(node)


def _split(node: exp.Union) -> tuple[list[exp.Select], list[bool]]:
    left, flags = _branches(node.this)
    right, more = _branches(node.expression)
    if more:
        raise Unsupported("a parenthesized UNION inside a UNION")
    return left + right, [*flags, bool(node.args.get("distinct"))]


def plan_union(node: exp.Union, ctx: Ctx) -> UnionOf:
    from proxy.rewrite.subquery import _name_items

    only(node, {"this", "expression", "distinct", "order", "limit", "offset"}, "UNION")
    selects, distinct = _split(node)
    for sel in selects:
        if not any(
            ctx.schema.table(t.args["db"].name if t.args.get("db") else ctx.database, t.name)
            for t in sel.find_all(exp.Table)
        ):
            raise Unsupported("UNION of the proxy's tables with other tables")
    texts = []
    for sel in selects:
        copy = sel.copy()
        _name_items(copy, ctx.sql)
        texts.append(copy.sql(dialect="mysql"))
    order = node.args.get("order")
    keys: list[tuple[str | int, bool]] = []
    for o in order.expressions if order is not None else []:
        e = o.this
        if isinstance(e, exp.Literal) and not e.is_string and e.this.isdigit():
            keys.append((int(e.this), bool(o.args.get("desc"))))
        elif isinstance(e, exp.Column) and not e.table and isinstance(e.this, exp.Identifier):
            keys.append((e.name, bool(o.args.get("desc"))))
        else:
            raise Unsupported("ORDER BY of a UNION by anything but result columns")
    limit = _count(node.args.get("limit"))
    offset = _count(node.args.get("offset")) or 0
    temp = any(distinct) or bool(keys)

    def combine(
        results: list[tuple[Decoder, list[tuple[Any, ...]]]],
    ) -> tuple[Decoder, list[Any]]:
        columns = _columns([d.columns for d, _ in results], temp)
        key = _dedupe_key(columns)
        rows: list[tuple[Any, ...]] = list(results[0][1])
        for (_, more), dedupe in zip(results[1:], distinct, strict=True):
            rows += more
            if dedupe:  # everything so far, as MariaDB's DISTINCT union does
                seen: set[tuple[Any, ...]] = set()
                kept = []
                for r in rows:
                    k = key(r)
                    if k not in seen:
                        seen.add(k)
                        kept.append(r)
                rows = kept
        for k, desc in reversed(keys):
            i = _position(k, columns)
            rows.sort(key=_sort_key(SortKey(i, desc, _text(columns[i]))), reverse=desc)
        end = None if limit is None else offset + limit
        rows = rows[offset:end] if offset or end is not None else rows
        return Decoder(columns, [], [], None, 0, ""), rows

    return UnionOf(texts, combine)


def _count(node: exp.Expression | None) -> int | None:
    if node is None:
        return None
    e = node.expression if isinstance(node, exp.Limit) else node
    e = e.expression if isinstance(e, exp.Offset) else e
    if not isinstance(e, exp.Literal) or e.is_string or not e.this.isdigit():
        raise Unsupported("LIMIT / OFFSET of a UNION other than a number")
    return int(e.this)


def _position(k: str | int, columns: list[OutCol]) -> int:
    if isinstance(k, int):
        if not 1 <= k <= len(columns):
            raise MysqlError(1054, "42S22", f"Unknown column '{k}' in 'order clause'")
        return k - 1
    for i, c in enumerate(columns):
        if c.name.lower() == k.lower():
            return i
    raise MysqlError(1054, "42S22", f"Unknown column '{k}' in 'order clause'")


def _text(c: OutCol) -> str | None:
    if c.type not in _TEXT_TYPES and c.type != T_MEDIUM_BLOB:
        return None
    return "bin" if c.flags & BINARY_FLAG else "ci"


def _dedupe_key(columns: list[OutCol]) -> Any:
    """Equal rows as MariaDB's DISTINCT sees them: text by its collation (PAD SPACE)."""
    texts = [_text(c) for c in columns]

    def key(row: Sequence[Any]) -> tuple[Any, ...]:
        out = []
        for v, t in zip(row, texts, strict=True):
            if v is None or t is None:
                out.append(v)
            else:
                out.append(v.rstrip(" ") if t == "bin" else v.rstrip(" ").upper())
        return tuple(out)

    return key


def _columns(branches: list[list[OutCol]], temp: bool) -> list[OutCol]:
    first = branches[0]
    for cols in branches[1:]:
        if len(cols) != len(first):
            raise MysqlError(
                1222, "21000", "The used SELECT statements have a different number of columns"
            )
    out = []
    for i, c in enumerate(first):
        same = [b[i] for b in branches]
        for o in same[1:]:
            if (o.type, o.decimals, o.flags & UNSIGNED_FLAG, o.charset, _text(o)) != (
                c.type,
                c.decimals,
                c.flags & UNSIGNED_FLAG,
                c.charset,
                _text(c),
            ):
                raise Unsupported(f"UNION of columns of different types (column {i + 1})")
        out.append(_union_column(c, same, temp))
    return out


def _union_column(c: OutCol, same: list[OutCol], temp: bool) -> OutCol:
    """One result column as MariaDB describes a UNION's (sql_union.cc, via its temporary
    table when `temp`)."""
    not_null = all(o.flags & NOT_NULL_FLAG for o in same)
    text = _text(c)
    flags = (NOT_NULL_FLAG if not_null else 0) | (c.flags & UNSIGNED_FLAG)
    if text == "bin" or c.type in (T_DATE, T_DATETIME) or (text is None and not temp):
        flags |= BINARY_FLAG
    length = max(o.length for o in same)
    type_, decimals = c.type, c.decimals
    if text is not None:
        decimals = 0 if temp else NOT_FIXED_DEC
        if c.type == T_BLOB:
            type_, length = (T_BLOB, 4 * 16777215) if temp else (T_MEDIUM_BLOB, 4 * 262140)
            flags |= BLOB_FLAG if temp else 0
    return replace(
        c,
        type=type_,
        length=length,
        decimals=decimals,
        flags=flags,
        table="",
        org_table="",
        org_name=c.name if temp else "",
        expression=True,
    )
