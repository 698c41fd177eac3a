"""A SELECT evaluated in the proxy over rows it holds, as MariaDB evaluates it on
information_schema (used by proxy.rewrite.infoschema; no I/O).

    decoder = evaluate(node, sql, defs, tables, database, lookups)

`defs`: per table, the backend's column definitions (their names, lowercased, are the rows'
keys); `tables`: the rows, dicts of Python values (`convert` reads a text-protocol value).
sqlglot's Python executor runs the query after `_prepare` has made it MariaDB's: identifiers
case-insensitive, DATABASE() the session's database, text compared and sorted
case-insensitively (utf8mb3_general_ci) except `=` between a lookup column (TABLE_SCHEMA,
TABLE_NAME: MariaDB looks those up in the file system, case-sensitively) and a constant,
numeric strings compared with numbers as numbers, GROUP_CONCAT and BINARY added. Result
columns are named as MariaDB names them; a column reference keeps the backend's definition.
Anything the executor cannot run raises (the caller refuses the statement).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlglot import exp
from sqlglot.executor.python import PythonExecutor
from sqlglot.executor.table import Table as ExecTable
from sqlglot.executor.table import ensure_tables
from sqlglot.optimizer import optimize
from sqlglot.planner import Plan
from sqlglot.schema import ensure_schema

from proxy.protocol.codec import ColumnDefinition, make_text_row
from proxy.rewrite.decode import (
    BINARY_FLAG,
    CHARSET_BINARY,
    CHARSET_UTF8MB4_CI,
    NOT_FIXED_DEC,
    NOT_NULL_FLAG,
    T_LONGLONG,
    T_NEWDECIMAL,
    T_VAR_STRING,
)
from proxy.rewrite.errors import Unsupported
from proxy.rewrite.select import _written

INFORMATION_SCHEMA = "information_schema"
Row = dict[str, Any]
Lookups = set[tuple[str, str]]  # (table, column) compared case-sensitively with `=` constants
_INT_TYPES = {1, 2, 3, 8, 9, 13}  # TINY SHORT LONG LONGLONG INT24 YEAR
_DECIMAL_TYPES = {0, 246}


def convert(d: ColumnDefinition, v: Any) -> Any:
    """A text-protocol value (bytes, or str from PyMySQL) as Python: integers and decimals
    by their column type, text as str."""
    if v is None:
        return None
    if isinstance(v, bytes | bytearray):
        v = bytes(v).decode("utf-8", "replace")
    if d.type in _INT_TYPES:
        return int(v)
    if d.type in _DECIMAL_TYPES:
        try:
            return Decimal(v)
        except InvalidOperation:
            return v
    return v


@dataclass
class RowsDecoder:
    """Decoder-compatible: the answer made in the proxy, with its column definitions."""

    columns: list[ColumnDefinition]
    rows: list[tuple[Any, ...]]

    def definitions(self, backend: Sequence[bytes] = ()) -> list[ColumnDefinition]:
        return self.columns

    def decode(self, rows: object) -> list[tuple[Any, ...]]:
        return self.rows

    def text_row(self, values: Sequence[Any]) -> bytes:
        return make_text_row([_encode(v) for v in values])


def _encode(v: Any) -> bytes | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return b"1" if v else b"0"
    if isinstance(v, Decimal):
        return format(v, "f").encode()
    if isinstance(v, float):
        return repr(v).encode()
    if isinstance(v, bytes):
        return v
    return str(v).encode("utf-8")


def evaluate(
    node: exp.Expression,
    sql: str,
    defs: dict[str, list[ColumnDefinition]],
    tables: dict[str, list[Row]],
    database: str | None,
    lookups: Lookups,
) -> RowsDecoder:
    kinds = _kinds(defs)
    first = node
    while isinstance(first, exp.SetOperation):
        first = first.this
    if not isinstance(first, exp.Select):
        raise Unsupported("this information_schema query")
    _expand_stars(first, defs)
    out_cols = _out_columns(first, sql, defs)
    tree = _prepare(node, database, kinds, lookups)
    sqlglot_schema = {
        INFORMATION_SCHEMA: {
            name: {d.name.decode().lower(): _sql_type(d) for d in ds} for name, ds in defs.items()
        }
    }
    # sqlglot.executor.execute, with the functions MariaDB has and the executor lacks.
    optimized = optimize(
        tree,
        ensure_schema(sqlglot_schema, dialect="mysql"),
        leave_tables_isolated=True,
        dialect="mysql",
    )
    # Tables built here: ensure_tables would normalize every name of every row (slow).
    data = ensure_tables(
        {
            INFORMATION_SCHEMA: {
                name: ExecTable(keys, [tuple(r.get(k) for k in keys) for r in tables[name]])
                for name, keys in (
                    (name, [d.name.decode().lower() for d in ds]) for name, ds in defs.items()
                )
            }
        },
        dialect="mysql",
    )
    result = PythonExecutor(env=_ENV, tables=data).execute(Plan(optimized))
    rows = [tuple(r) for r in result.rows]
    if len(result.columns) != len(out_cols):
        raise Unsupported("this information_schema query (its columns)")
    text_charset = next(
        (d.charset for ds in defs.values() for d in ds if d.charset != CHARSET_BINARY),
        CHARSET_UTF8MB4_CI,
    )
    definitions = [
        _definition(oc, [r[i] for r in rows], text_charset) for i, oc in enumerate(out_cols)
    ]
    return RowsDecoder(definitions, rows)


def _sql_type(d: ColumnDefinition) -> str:
    if d.type in _INT_TYPES:
        return "BIGINT"
    if d.type in _DECIMAL_TYPES:
        return "DECIMAL"
    return "VARCHAR"


@dataclass
class _OutCol:
    name: str
    source: ColumnDefinition | None  # a column of an information_schema table, as is
    table: str = ""
    binary: bool = False  # BINARY x: a binary string


def _sources(select: exp.Select) -> list[tuple[str, str, str]]:
    """(alias lowercased, information_schema table, alias as written) in FROM / JOIN order."""
    out = []
    for t in [select.args.get("from_") or select.args.get("from"), *select.args.get("joins", [])]:
        if t is None:
            continue
        table = t.this
        if isinstance(table, exp.Table):
            written = table.alias or table.name
            out.append((written.lower(), table.name.lower(), written))
    return out


def _expand_stars(select: exp.Select, defs: dict[str, list[ColumnDefinition]]) -> None:
    """`*` / `t.*` -> the columns in the backend's order, so names and types are known."""
    sources = _sources(select)
    items: list[exp.Expression] = []
    for e in select.expressions:
        qual = e.table if isinstance(e, exp.Column) and isinstance(e.this, exp.Star) else None
        if not isinstance(e, exp.Star) and qual is None:
            items.append(e)
            continue
        matched = [s for s in sources if qual is None or s[0] == qual.lower()]
        if not matched or any(s[1] not in defs for s in matched):
            raise Unsupported("this information_schema query (*)")
        for _, name, written in matched:
            for d in defs[name]:
                items.append(exp.column(d.name.decode(), table=written))
    select.set("expressions", items)


def _out_columns(
    select: exp.Select, sql: str, defs: dict[str, list[ColumnDefinition]]
) -> list[_OutCol]:
    """Result column names as MariaDB gives them: the alias, a column's name as written,
    else the item's text; a plain column reference keeps its backend definition."""
    sources = _sources(select)
    out = []
    for e in select.expressions:
        alias = None
        if isinstance(e, exp.Alias):
            alias, e = e.alias, e.this
        if isinstance(e, exp.Column):
            qual = e.table.lower() if e.table else None
            src = [s for s in sources if qual is None or s[0] == qual]
            found = None
            for _, name, written in src:
                for d in defs.get(name, []):
                    if d.name.decode().lower() == e.name.lower():
                        found = (d, written)
                        break
                if found:
                    break
            if found is not None:
                out.append(_OutCol(alias or e.name, found[0], found[1]))
                continue
        out.append(_OutCol(alias or _written(e, sql) or e.sql("mysql"), None, binary=_is_binary(e)))
    return out


def _definition(oc: _OutCol, values: list[Any], text_charset: int) -> ColumnDefinition:
    name = oc.name.encode()
    if oc.source is not None:
        d = oc.source
        return ColumnDefinition(
            name=name,
            type=d.type,
            length=d.length,
            flags=d.flags,
            decimals=d.decimals,
            charset=d.charset,
            schema=d.schema,
            table=oc.table.encode(),
            org_table=d.org_table,
            org_name=d.org_name,
        )
    present = [v for v in values if v is not None]
    if oc.binary:
        return ColumnDefinition(name=name, type=T_VAR_STRING, length=192, flags=BINARY_FLAG)
    if present and all(isinstance(v, int) for v in present):
        flags = BINARY_FLAG | (NOT_NULL_FLAG if len(present) == len(values) else 0)
        return ColumnDefinition(name=name, type=T_LONGLONG, length=21, flags=flags)
    if present and all(isinstance(v, Decimal | float | int) for v in present):
        return ColumnDefinition(name=name, type=T_NEWDECIMAL, length=65, flags=BINARY_FLAG)
    # Text in the charset the backend sends information_schema text in (the session's).
    return ColumnDefinition(
        name=name, type=T_VAR_STRING, length=256, charset=text_charset, decimals=NOT_FIXED_DEC
    )


# The executor compiles the query into Python source and evaluates it in the proxy, which
# holds the keys: only node types known to render as safe Python are let through (a Var, a
# COLLATE name, an introducer would be code), and no identifier with a quote, backslash or
# control character (identifiers go in double-quoted strings without escaping, so a
# backslash could end one early and put the rest of the query in code position).
_SAFE_NODES: tuple[type[exp.Expression], ...] = (
    exp.Select, exp.Union, exp.From, exp.Join, exp.Where, exp.Group, exp.Having, exp.Order,
    exp.Ordered, exp.Limit, exp.Offset, exp.Lock, exp.Subquery, exp.Exists, exp.Table,
    exp.TableAlias, exp.Alias, exp.Column, exp.Identifier, exp.Star, exp.Literal, exp.Null,
    exp.Boolean, exp.Paren, exp.Tuple, exp.And, exp.Or, exp.Not, exp.EQ, exp.NEQ, exp.GT,
    exp.GTE, exp.LT, exp.LTE, exp.Is, exp.In, exp.Between, exp.Like, exp.Add, exp.Sub,
    exp.Mul, exp.Div, exp.Mod, exp.Neg, exp.Case, exp.If, exp.Coalesce, exp.Nullif,
    exp.Concat, exp.ConcatWs, exp.Upper, exp.Lower, exp.Length, exp.Substring, exp.Trim,
    exp.Abs, exp.Round, exp.CurrentSchema, exp.Cast, exp.DataType, exp.Count, exp.Sum,
    exp.Min, exp.Max, exp.Avg, exp.GroupConcat, exp.Distinct,
)  # fmt: skip
_T = exp.DataType.Type
_CAST_TYPES = {_T.CHAR, _T.VARCHAR, _T.TEXT, _T.BINARY, _T.VARBINARY, _T.BIGINT, _T.UBIGINT}
_CAST_TYPES |= {_T.INT, _T.UINT, _T.DECIMAL, _T.DATE, _T.DATETIME}
_UNSAFE_IDENTIFIER = re.compile(r'["\\\x00-\x1f\x7f]')


def check_supported(tree: exp.Expression) -> None:
    """Refuse (Unsupported) what the evaluator must not or cannot run: at plan time, before
    anything is fetched."""
    for n in tree.walk():
        if type(n) not in _SAFE_NODES:
            raise Unsupported(f"{n.key.upper()} in information_schema queries")
        if isinstance(n, exp.Identifier) and _UNSAFE_IDENTIFIER.search(n.name):
            raise Unsupported("identifiers with quotes, backslashes or control characters here")
        if isinstance(n, exp.DataType) and (n.expressions or n.this not in _CAST_TYPES):
            raise Unsupported("this CAST in information_schema queries")


def _prepare(
    node: exp.Expression, database: str | None, kinds: Kinds, lookups: Lookups
) -> exp.Expression:
    """The client's query in the executor's terms: lowercased identifiers (MariaDB's are
    case-insensitive here), DATABASE() as a constant, comparisons and sorting of text
    case-insensitive (utf8mb3_general_ci), numbers compared with numeric strings as numbers."""
    check_supported(node)  # also checked at plan time; cheap, and evaluate() is public
    tree = node.copy()

    def fix(n: exp.Expression) -> exp.Expression:
        if isinstance(n, exp.CurrentSchema):
            return exp.Literal.string(database) if database is not None else exp.null()
        if isinstance(n, exp.Identifier):
            return exp.to_identifier(n.name.lower())
        if isinstance(n, exp.Table) and n.name:
            db = n.args.get("db")
            if db is None:
                n.set("db", exp.to_identifier(INFORMATION_SCHEMA))
        return n

    tree = tree.transform(fix)
    for sel in tree.find_all(exp.Select):
        sel.set("locks", None)  # FOR UPDATE / LOCK IN SHARE MODE: MariaDB locks nothing here
    for like in list(tree.find_all(exp.Like)):  # after `fix`: it does not visit replacements
        like.replace(exp.ILike(**like.args))
    for sel in list(tree.find_all(exp.Select)):
        _collate(sel, kinds, lookups)
        _ci_order(sel, kinds)
    # BINARY x: compared and sorted as is (Python's str order is the code points'), after
    # the case-insensitive wrapping above, which it escapes.
    for cast in list(tree.find_all(exp.Cast)):
        if _is_binary(cast):
            cast.replace(cast.this)
    for gc in list(tree.find_all(exp.GroupConcat)):
        gc.replace(_group_concat(gc))
    return tree


def _is_binary(e: exp.Expression) -> bool:
    return isinstance(e, exp.Cast) and e.to.this in (
        exp.DataType.Type.BINARY,
        exp.DataType.Type.VARBINARY,
    )


def _group_concat(gc: exp.GroupConcat) -> exp.Expression:
    """GROUP_CONCAT([DISTINCT] x [ORDER BY k ...] [SEPARATOR s]) as an ARRAY_AGG of
    (x, k...) rows that CRYPTDB_GROUP_CONCAT joins (the executor has no GROUP_CONCAT)."""
    inner, keys = gc.this, []
    if isinstance(inner, exp.Order):
        inner, keys = inner.this, list(inner.expressions)
    distinct = isinstance(inner, exp.Distinct)
    if distinct:
        if len(inner.expressions) != 1:
            raise Unsupported("GROUP_CONCAT(DISTINCT with several expressions)")
        inner = inner.expressions[0]
    sep = gc.args.get("separator")
    if sep is not None and not (isinstance(sep, exp.Literal) and sep.is_string):
        raise Unsupported("GROUP_CONCAT with this SEPARATOR")
    spec = {
        "sep": sep.this if sep is not None else ",",
        "desc": [bool(k.args.get("desc")) for k in keys],
        "distinct": distinct,
    }
    row = exp.Anonymous(this="CRYPTDB_ROW", expressions=[inner, *(k.this for k in keys)])
    return exp.Anonymous(
        this="CRYPTDB_GROUP_CONCAT",
        expressions=[exp.ArrayAgg(this=row), exp.Literal.string(json.dumps(spec))],
    )


def _sort_value(v: Any) -> tuple[bool, Any]:
    return (v is not None, v.upper() if isinstance(v, str) else (v if v is not None else 0))


def _cryptdb_group_concat(rows: list[tuple[Any, ...]] | None, spec_json: str) -> str | None:
    spec = json.loads(spec_json)
    rows = [r for r in rows or [] if r[0] is not None]
    for i in reversed(range(len(spec["desc"]))):
        rows.sort(key=lambda r, i=i: _sort_value(r[i + 1]), reverse=spec["desc"][i])
    values = [v.decode() if isinstance(v, bytes) else _text(v) for v, *_ in rows]
    if spec["distinct"]:
        values = list(dict.fromkeys(values))
    return spec["sep"].join(values) if values else None


def _text(v: Any) -> str:
    return format(v, "f") if isinstance(v, Decimal) else str(v)


_ENV: dict[str, Callable[..., Any]] = {
    "CRYPTDB_ROW": lambda *args: args,
    "CRYPTDB_GROUP_CONCAT": _cryptdb_group_concat,
}


# (information_schema table, column) -> "int" | "text" | "other"; lookup columns marked.
Kinds = dict[tuple[str, str], str]
_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ)


def _kinds(defs: dict[str, list[ColumnDefinition]]) -> Kinds:
    out: Kinds = {}
    for name, ds in defs.items():
        for d in ds:
            kind = (
                "int"
                if d.type in _INT_TYPES
                else "text"
                if d.charset != CHARSET_BINARY
                else "other"
            )
            out[(name, d.name.decode().lower())] = kind
    return out


def _resolve(
    col: exp.Column, sources: list[tuple[str, str, str]], kinds: Kinds
) -> tuple[str, str] | None:
    """(information_schema table, column) a column reference of one SELECT names."""
    qual = col.table.lower() if col.table else None
    for alias, name, _ in sources:
        if (qual is None or alias == qual) and (name, col.name.lower()) in kinds:
            return name, col.name.lower()
    return None


def _collate(select: exp.Select, kinds: Kinds, lookups: Lookups) -> None:
    """Comparisons of an information_schema column with constants, as MariaDB makes them."""
    sources = _sources(select)
    for cmp in list(select.find_all(*_COMPARISONS, exp.In, exp.Between)):
        if cmp.parent_select is not select:
            continue
        if isinstance(cmp, exp.In):
            if cmp.args.get("query") or not isinstance(cmp.this, exp.Column):
                continue
            # A one-value IN is an `=` to MariaDB (looked up too); a longer list is not.
            col, consts = cmp.this, list(cmp.expressions)
            exact = len(consts) == 1
        elif isinstance(cmp, exp.Between):
            col, consts, exact = cmp.this, [cmp.args["low"], cmp.args["high"]], False
            if not isinstance(col, exp.Column):
                continue
        elif isinstance(cmp.this, exp.Column) and isinstance(cmp.expression, exp.Literal):
            col, consts, exact = cmp.this, [cmp.expression], isinstance(cmp, exp.EQ)
        elif isinstance(cmp.expression, exp.Column) and isinstance(cmp.this, exp.Literal):
            col, consts, exact = cmp.expression, [cmp.this], isinstance(cmp, exp.EQ)
        else:
            continue
        if not all(isinstance(c, exp.Literal) for c in consts):
            continue
        ref = _resolve(col, sources, kinds)
        kind = kinds.get(ref) if ref is not None else None
        if kind == "int":
            for c in consts:
                if c.is_string and re.fullmatch(r"\s*-?\d+(\.\d*)?\s*", c.this):
                    c.replace(exp.Literal.number(c.this.strip()))
        elif kind == "text" and not (exact and ref in lookups):
            for c in consts:
                if c.is_string:
                    c.replace(exp.Upper(this=c.copy()))
            col.replace(exp.Upper(this=col.copy()))


def _ci_order(select: exp.Select, kinds: Kinds) -> None:
    order = select.args.get("order")
    if order is None:
        return
    aliases = {e.alias.lower() for e in select.expressions if isinstance(e, exp.Alias)}
    sources = _sources(select)
    for o in order.expressions:
        col = o.this
        if not isinstance(col, exp.Column) or (not col.table and col.name in aliases):
            continue
        ref = _resolve(col, sources, kinds)
        if ref is not None and kinds[ref] == "text":
            o.set("this", exp.Upper(this=col.copy()))
