"""The outer query over a derived table, evaluated on its decrypted rows (proxy.rewrite.derived).

    rows -> WHERE -> groups (GROUP BY, aggregates) -> HAVING -> select list -> DISTINCT
         -> ORDER BY -> LIMIT / OFFSET

Each step as MariaDB does it: three-valued conditions (proxy.rewrite.having's evaluator),
aggregates skipping NULLs (SUM / AVG exact, AVG rounded half up to the scale + 4; COUNT of no
rows 0, the others NULL; one row for an ungrouped query over no rows), NULLs first in
ascending order, text by its collation: `_bin` compared, grouped and deduplicated with PAD
SPACE ('a ' = 'a'); other collations only sorted (the proxy's ASCII case folding), anything
else on them refused, since the proxy does not reproduce them exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from sqlglot import exp

from onion.encoding import Kind
from proxy.protocol.errors import MysqlError
from proxy.rewrite.decode import (
    BINARY_FLAG,
    BLOB_FLAG,
    CHARSET_BINARY,
    NO_DEFAULT_VALUE_FLAG,
    NOT_NULL_FLAG,
    PRI_KEY_FLAG,
    T_BLOB,
    T_DATE,
    T_DATETIME,
    T_INT24,
    T_LONG,
    T_LONGLONG,
    T_NEWDECIMAL,
    T_SHORT,
    T_STRING,
    T_TINY,
    T_VAR_STRING,
    UNIQUE_KEY_FLAG,
    UNSIGNED_FLAG,
    Decoder,
    OutCol,
    SortKey,
    _avg,
    _sort_key,
    bin_key,
    constant_out,
    count_out,
    decimal_out,
    min_max_out,
    sum_out,
)
from proxy.rewrite.errors import UnknownColumn, Unsupported
from proxy.rewrite.having import Node, Operand, bind_having, condition_tree
from proxy.rewrite.literals import Lit
from proxy.rewrite.resolve import Ctx, constant, is_null
from proxy.rewrite.select import AGGREGATES, _written, select_constant
from proxy.schema import Column

_INT_BITS = {T_TINY: 8, T_SHORT: 16, T_INT24: 24, T_LONG: 32, T_LONGLONG: 64}
_TEXT = {T_STRING: "char", T_VAR_STRING: "varchar", T_BLOB: "text"}
# What the outer WHERE / HAVING / GROUP BY / ORDER BY may be made of (proxy.rewrite.having).
_CONDITION = (
    exp.Where, exp.Having, exp.Group, exp.Order, exp.Ordered, exp.And, exp.Or, exp.Not,
    exp.Paren, exp.EQ, exp.NEQ, exp.NullSafeEQ, exp.LT, exp.LTE, exp.GT, exp.GTE, exp.In,
    exp.Between, exp.Is, exp.Null, exp.Boolean, exp.Literal, exp.Neg, exp.Column,
    exp.Identifier, exp.Star, exp.Distinct, *AGGREGATES,
)  # fmt: skip
# What a column keeps in MariaDB's temporary tables: no key flags; BINARY only on binary
# strings and temporal types (not on numbers). GROUP_FLAG shares NUM_FLAG's bit.
_TEMP_KEEP = NOT_NULL_FLAG | BLOB_FLAG | UNSIGNED_FLAG | NO_DEFAULT_VALUE_FLAG
_GROUP_FLAG = 32768

Slot = tuple[str, int | None]  # ("col", derived column) or (aggregate, column or None)


class DerivedRows(Decoder):
    """The outer query's answer: rows already made, with their definitions; `origins`: the
    base table of each column (what a temporary table over it names as org_table)."""

    def __init__(
        self, columns: list[OutCol], database: str, origins: list[str], rows: list[Any]
    ) -> None:
        readers = [(lambda r, i=i: r[i]) for i in range(len(columns))]
        super().__init__(columns, readers, [], None, 0, database)
        self.origins = origins
        self.rows = rows


@dataclass
class _Item:
    name: str
    slot: Slot
    alias: bool  # named by AS (ORDER BY / HAVING may use the name)


class Outer:
    """The outer SELECT (without FROM), checked at plan time, run over the rows."""

    def __init__(self, node: exp.Select, alias: str, ctx: Ctx, materialized: bool) -> None:
        self.node, self.alias, self.sql, self.materialized = node, alias, ctx.sql, materialized
        nodes = list(node.find_all(exp.Literal))
        self.lits = [Lit(n.this, n.is_string, n.sql("mysql"), -1) for n in nodes]
        self.ctx = Ctx(
            ctx.schema, ctx.database, ctx.crypto, {id(n): i for i, n in enumerate(nodes)}
        )
        for item in node.expressions:
            e = item.this if isinstance(item, exp.Alias) else item
            if not _simple(e) and select_constant(e) is None:
                raise Unsupported(f"{e.key.upper()} in the select list over a derived table")
        for clause in ("where", "having", "group", "order"):
            part = node.args.get(clause)
            bad = (
                next((n for n in part.walk() if not isinstance(n, _CONDITION)), None)
                if part
                else None
            )
            if bad is not None:  # refused before the inner statement runs
                raise Unsupported(f"{bad.key.upper()} in {clause.upper()} over a derived table")

    def run(
        self, decoder: Decoder, rows: list[tuple[Any, ...]], origins: list[str | None] | None
    ) -> tuple[Decoder, list[tuple[Any, ...]]]:
        run = _Run(self, decoder, origins)
        out = run.evaluate(rows)
        return DerivedRows(run.out_columns(), decoder.database, run.out_origins(), out), out


def _simple(e: exp.Expression) -> bool:
    """A column, `*`, or an aggregate of a column (COUNT(*), COUNT(DISTINCT c))."""
    if isinstance(e, exp.Column | exp.Star):
        return True
    if not isinstance(e, AGGREGATES):
        return False
    arg = e.this
    if isinstance(arg, exp.Distinct):
        return (
            isinstance(e, exp.Count)
            and len(arg.expressions) == 1
            and _simple_col(arg.expressions[0])
        )
    return isinstance(arg, exp.Star) and isinstance(e, exp.Count) or _simple_col(arg)


def _simple_col(e: exp.Expression) -> bool:
    return isinstance(e, exp.Column) and isinstance(e.this, exp.Identifier)


def as_column(oc: OutCol, i: int) -> Column:
    """A derived table's column as a schema column (kind, precision, collation), so the
    condition evaluator and metadata helpers take it as they take a table's."""
    nullable = not oc.flags & NOT_NULL_FLAG
    unsigned = bool(oc.flags & UNSIGNED_FLAG)
    kw: dict[str, Any] = {}
    if oc.type in _INT_BITS:
        kind, kw["bits"] = (Kind.UINT if unsigned else Kind.INT), _INT_BITS[oc.type]
    elif oc.type == T_NEWDECIMAL:
        kind, kw["scale"], kw["unsigned"] = Kind.DECIMAL, oc.decimals, unsigned
        kw["precision"] = oc.length - (1 if oc.decimals else 0) - (0 if unsigned else 1)
    elif oc.type == T_DATE:
        kind = Kind.DATE
    elif oc.type == T_DATETIME:
        kind, kw["fsp"] = Kind.DATETIME, oc.fsp
    elif oc.type in _TEXT and oc.charset != CHARSET_BINARY:
        kind, kw["text"] = Kind.STRING, _TEXT[oc.type]
        kw["length"] = 0 if oc.type == T_BLOB else oc.length // 4
        kw["collation"] = "utf8mb4_bin" if oc.flags & BINARY_FLAG else "utf8mb4_general_ci"
    else:
        raise Unsupported(f"a derived table's column {oc.name} of this type")
    return Column(-1 - i, oc.name, "", kind.value, nullable, **kw)


def _text_ci(col: Column | None) -> bool:
    return col is not None and col.kind == Kind.STRING and not col.binary_collation()


class _Run:
    """One evaluation: the derived table's columns resolved, slots laid out."""

    def __init__(self, outer: Outer, decoder: Decoder, origins: list[str | None] | None) -> None:
        self.o = outer
        self.cols = list(decoder.columns)
        seen: set[str] = set()
        for c in self.cols:
            if c.name.lower() in seen:
                raise MysqlError(1060, "42S21", f"Duplicate column name '{c.name}'")
            seen.add(c.name.lower())
        self.schema_cols = [as_column(c, i) for i, c in enumerate(self.cols)]
        base = getattr(decoder, "origins", None)
        self.origins = [self._origin(i, c, origins, base) for i, c in enumerate(self.cols)]
        node = outer.node
        self.slots: list[Slot] = []
        self.consts: list[Any] = []
        self.items = self._items(node)
        group = node.args.get("group")
        self.group = [self._group_key(g) for g in group.expressions] if group else []
        having = node.args.get("having")
        self.grouped = bool(self.group) or any(s[0] not in ("col", "const") for s in self.slots)
        self.grouped = self.grouped or (
            having is not None and having.this.find(*AGGREGATES) is not None
        )
        if self.grouped:
            for it in self.items:
                if it.slot[0] == "col" and it.slot[1] not in self.group:
                    raise Unsupported(
                        f"column {it.name} neither grouped nor aggregated over a derived table"
                    )
        where = node.args.get("where")
        self.where = self._condition(where.this, "where clause") if where is not None else None
        self.having = self._condition(having.this, "having clause") if having is not None else None
        self.visible = len(self.items)
        self.distinct = node.args.get("distinct") is not None
        order = node.args.get("order")
        self.sort = [self._order(o) for o in order.expressions] if order else []
        self.limit, self.offset = _int_clause(node, "limit"), _int_clause(node, "offset") or 0

    def _origin(
        self, i: int, c: OutCol, origins: list[str | None] | None, base: list[str] | None
    ) -> str:
        if base is not None:
            return base[i]
        if origins is not None and i < len(origins) and origins[i] is not None:
            return origins[i] or ""
        if c.expression:
            return ""
        return c.table if c.org_table is None else c.org_table

    # ---- resolution --------------------------------------------------------------------------

    def column(self, e: exp.Column, clause: str) -> int:
        if e.table and e.table != self.o.alias:
            raise UnknownColumn(e.sql("mysql"), clause)
        for i, c in enumerate(self.cols):
            if c.name.lower() == e.name.lower():
                return i
        raise UnknownColumn(e.sql("mysql"), clause)

    def _slot(self, slot: Slot) -> int:
        if slot not in self.slots:
            self.slots.append(slot)
        return self.slots.index(slot)

    def _aggregate(self, e: exp.Expression, clause: str) -> Slot:
        if not _simple(e) or isinstance(e, exp.Column | exp.Star):
            raise Unsupported(f"{e.key.upper()} in a query over a derived table")
        arg = e.this
        if isinstance(e, exp.Count) and isinstance(arg, exp.Star):
            return ("count*", None)
        if isinstance(arg, exp.Distinct):
            i = self.column(arg.expressions[0], clause)
            self._no_ci(i, "COUNT(DISTINCT)")
            return ("countd", i)
        i = self.column(arg, clause)
        fn = e.key  # count sum avg min max
        col = self.schema_cols[i]
        numeric = col.kind in (Kind.INT, Kind.UINT, Kind.DECIMAL)
        if fn in ("sum", "avg") and not numeric:
            raise Unsupported(f"{fn.upper()} of non-numeric column {col.name} over a derived table")
        if fn in ("min", "max"):
            self._no_ci(i, fn.upper())
        return (fn, i)

    def _no_ci(self, i: int, what: str) -> None:
        if _text_ci(self.schema_cols[i]):
            raise Unsupported(
                f"{what} on text column {self.cols[i].name} of a case-insensitive collation over "
                "a derived table (the proxy does not reproduce it; declare it utf8mb4_bin)"
            )

    def _items(self, node: exp.Select) -> list[_Item]:
        out = []
        for item in node.expressions:
            alias = item.alias if isinstance(item, exp.Alias) else None
            e = item.this if isinstance(item, exp.Alias) else item
            if isinstance(e, exp.Star) or (
                isinstance(e, exp.Column) and isinstance(e.this, exp.Star)
            ):
                if isinstance(e, exp.Column) and e.table != self.o.alias:
                    raise MysqlError(1051, "42S02", f"Unknown table '{e.table}'")
                for i, c in enumerate(self.cols):
                    out.append(_Item(c.name, ("col", i), False))
                    self._slot(("col", i))
                continue
            const = select_constant(e)
            if isinstance(e, exp.Column):
                slot: Slot = ("col", self.column(e, "field list"))
                name = alias or e.name
            elif const is not None:  # `SELECT 1 AS a FROM (...) x LIMIT 1`, made here
                self.consts.append(const[0])
                slot, name = ("const", len(self.consts) - 1), alias or const[1]
            else:
                slot = self._aggregate(e, "field list")
                name = alias or _written(e, self.o.sql) or e.sql("mysql")
            out.append(_Item(name, slot, alias is not None))
            self._slot(slot)
        return out

    def _group_key(self, g: exp.Expression) -> int:
        """GROUP BY: a column of the derived table (MariaDB looks there before the select
        list's aliases), an alias or a position of a selected column."""
        if isinstance(g, exp.Literal) and g.is_int:
            n = int(g.this)
            if not 1 <= n <= len(self.items):
                raise MysqlError(1054, "42S22", f"Unknown column '{n}' in 'group statement'")
            slot = self.items[n - 1].slot
        elif isinstance(g, exp.Column) and isinstance(g.this, exp.Identifier):
            try:
                slot = ("col", self.column(g, "group statement"))
            except UnknownColumn:
                found = [
                    it.slot for it in self.items if it.alias and it.name.lower() == g.name.lower()
                ]
                if g.table or not found:
                    raise
                slot = found[0]
        else:
            raise Unsupported(f"GROUP BY {g.key.upper()} over a derived table")
        if slot[0] != "col" or slot[1] is None:
            raise MysqlError(1056, "42000", "Can't group on an aggregate")
        self._no_ci(slot[1], "GROUP BY")
        return slot[1]

    def _condition(self, cond: exp.Expression, clause: str) -> Node:
        def operand(e: exp.Expression) -> Operand:
            while isinstance(e, exp.Paren):
                e = e.this
            if is_null(e):
                return Operand(null=True)
            c = constant(e, self.o.ctx)
            if c is not None:
                return Operand(lit=c[0], negate=c[1])
            if isinstance(e, AGGREGATES):
                if clause == "where clause":
                    raise MysqlError(1111, "HY000", "Invalid use of group function")
                slot = self._aggregate(e, clause)
            elif isinstance(e, exp.Column) and isinstance(e.this, exp.Identifier):
                slot = self._named(e, clause)
            else:
                raise Unsupported(f"{e.key.upper()} in a condition over a derived table")
            col = self._slot_column(slot)
            if _text_ci(col):
                raise Unsupported(
                    f"comparing text column {col.name if col else ''} of a case-insensitive "
                    "collation over a derived table (declare it utf8mb4_bin)"
                )
            if clause == "where clause":  # read from the derived table's rows
                return Operand(reader=slot[1], col=col)
            return Operand(reader=self._slot(slot), col=col)

        return condition_tree(cond, operand, clause.split()[0].upper())

    def _named(self, e: exp.Column, clause: str) -> Slot:
        """A name in HAVING or ORDER BY: a select-list name first, then a column."""
        if not e.table and clause != "where clause":
            for it in self.items:
                if it.name.lower() == e.name.lower():
                    if it.slot[0] == "const":
                        raise Unsupported(
                            "naming a constant of the select list over a derived table"
                        )
                    return it.slot
        i = self.column(e, clause)
        if self.grouped and clause != "where clause" and i not in self.group:
            raise UnknownColumn(e.sql("mysql"), clause)
        return ("col", i)

    def _slot_column(self, slot: Slot) -> Column | None:
        """The kind of a slot's values (None: a number)."""
        fn, i = slot
        if fn == "const":
            return None  # never compared with: HAVING / ORDER BY names of constants refused
        if fn in ("col", "min", "max") and i is not None:
            return self.schema_cols[i]
        return None

    def _order(self, o: exp.Ordered) -> SortKey:
        e = o.this
        if isinstance(e, exp.Literal) and e.is_int:
            n = int(e.this)
            if not 1 <= n <= len(self.items):
                raise MysqlError(1054, "42S22", f"Unknown column '{n}' in 'order clause'")
            slot = self.items[n - 1].slot
        elif isinstance(e, AGGREGATES):
            if not self.grouped:
                raise Unsupported(
                    "an aggregate in ORDER BY of an ungrouped query over a derived table"
                )
            slot = self._aggregate(e, "order clause")
        elif isinstance(e, exp.Column) and isinstance(e.this, exp.Identifier):
            slot = self._named(e, "order clause")
        else:
            raise Unsupported(f"ORDER BY {e.key.upper()} over a derived table")
        pos = self._slot(slot)
        if self.distinct and pos >= self.visible:
            raise Unsupported("ORDER BY a column not selected, with DISTINCT over a derived table")
        col = self._slot_column(slot)
        text = None
        if col is not None and col.kind == Kind.STRING:
            text = "bin" if col.binary_collation() else "ci"
        return SortKey(pos, bool(o.args.get("desc")), text)

    # ---- evaluation --------------------------------------------------------------------------

    def evaluate(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        lits = self.o.lits
        if self.where is not None:
            keep = bind_having(self.where, lits)
            rows = [r for r in rows if keep(r)]
        if self.grouped:
            groups = _groups(rows, self.group, self.schema_cols) if self.group else [rows]
        else:
            groups = [[r] for r in rows]
        makers = [self._maker(s) for s in self.slots]
        out = [tuple(m(g) for m in makers) for g in groups]
        if self.having is not None:
            keep = bind_having(self.having, lits)
            out = [r for r in out if keep(r)]
        order = [it.slot for it in self.items]
        hidden = [s for s in self.slots if s not in order]
        layout = [self.slots.index(s) for s in order + hidden]
        remap = {old: new for new, old in enumerate(layout)}
        out = [tuple(r[i] for i in layout) for r in out]
        if self.distinct:
            keys = [self._key(self.items[j].slot) for j in range(self.visible)]
            seen: dict[tuple[Any, ...], None] = {}
            kept = []
            for r in out:
                k = tuple(f(v) for f, v in zip(keys, r[: self.visible], strict=True))
                if k not in seen:
                    seen[k] = None
                    kept.append(r)
            out = kept
        for key in reversed(self.sort):
            out.sort(key=_sort_key(replace(key, reader=remap[key.reader])), reverse=key.desc)
        end = None if self.limit is None else self.offset + self.limit
        return [r[: self.visible] for r in out[self.offset : end]]

    def _key(self, slot: Slot) -> Callable[[Any], Any]:
        col = self._slot_column(slot)
        if col is not None and col.kind == Kind.STRING:
            if not col.binary_collation():
                raise Unsupported(
                    f"DISTINCT on text column {col.name} of a case-insensitive collation over a "
                    "derived table (declare it utf8mb4_bin)"
                )
            return _pad_key
        return lambda v: v

    def _maker(self, slot: Slot) -> Callable[[list[tuple[Any, ...]]], Any]:
        fn, i = slot
        if fn == "count*":
            return len
        assert i is not None
        if fn == "const":
            value = self.consts[i]
            return lambda g: value
        if fn == "col":
            return lambda g: g[0][i] if g else None
        if fn == "countd":
            key = self._key(("col", i))
            return lambda g: len({key(r[i]) for r in g if r[i] is not None})

        def values(g: list[tuple[Any, ...]]) -> list[Any]:
            return [r[i] for r in g if r[i] is not None]

        if fn == "count":
            return lambda g: len(values(g))
        if fn == "sum":
            return lambda g: Decimal(sum(v)) if (v := values(g)) else None  # SUM is DECIMAL
        if fn == "avg":
            scale = min(self.schema_cols[i].scale + 4, 38)
            return lambda g: _avg(sum(v), len(v), scale) if (v := values(g)) else None
        pick = min if fn == "min" else max
        col = self.schema_cols[i]
        key = bin_key if col.kind == Kind.STRING else None
        return lambda g: pick(v, key=key) if (v := values(g)) else None

    # ---- metadata ----------------------------------------------------------------------------

    def out_columns(self) -> list[OutCol]:
        # MariaDB groups and deduplicates through a temporary table, unless a selected
        # unique key makes DISTINCT a no-op (approximated by a key column being selected).
        temp = bool(self.group) or (
            self.distinct
            and (
                self.o.materialized
                or not any(
                    it.slot[0] == "col"
                    and self.cols[it.slot[1] or 0].flags & (PRI_KEY_FLAG | UNIQUE_KEY_FLAG)
                    for it in self.items
                )
            )
        )
        return [self._out(it, temp) for it in self.items]

    def out_origins(self) -> list[str]:
        return [self.origins[i] if f == "col" and i is not None else "" for f, i in self._slots()]

    def _slots(self) -> list[Slot]:
        return [it.slot for it in self.items]

    def _out(self, it: _Item, temp: bool) -> OutCol:
        fn, i = it.slot
        if fn in ("count*", "count", "countd"):
            return count_out(it.name)
        assert i is not None
        if fn == "const":
            return constant_out(it.name, self.consts[i])
        col = self.schema_cols[i]
        oc = self.cols[i]
        if fn in ("sum", "avg") and col.kind in (Kind.INT, Kind.UINT):
            # MariaDB's precision of an integer is its display length's digits (a COUNT's
            # 21 makes 20, where BIGINT's 20 makes 19)
            digits = oc.length - (0 if col.kind == Kind.UINT else 1)
            avg = fn == "avg"
            return decimal_out(it.name, min(65, digits + (4 if avg else 22)), 4 if avg else 0)
        if fn in ("sum", "avg"):
            return sum_out(col, it.name, fn == "avg")
        if fn in ("min", "max"):  # the column's own length (a COUNT's is 21, not BIGINT's 20)
            return replace(min_max_out(col, it.name), length=oc.length)
        if not self.o.materialized and not temp:  # merged: the alias stands for the table
            return replace(
                oc, name=it.name, table=self.o.alias, org_table=self.o.alias, org_name=oc.name
            )
        flags = oc.flags & _TEMP_KEEP
        if oc.type in (T_DATE, T_DATETIME) or (oc.flags & BINARY_FLAG and col.kind == Kind.STRING):
            flags |= BINARY_FLAG
        if temp:
            flags |= _GROUP_FLAG
        return replace(
            oc,
            name=it.name,
            flags=flags,
            decimals=0 if col.kind == Kind.STRING else oc.decimals,  # a field's, not 39
            table=self.o.alias,
            org_table=self.origins[i],
            org_name=oc.name,
            expression=oc.expression or self.o.materialized,
        )


def _pad_key(v: Any) -> Any:
    """PAD SPACE equality of a `_bin` collation: trailing spaces do not count."""
    return v.rstrip(" ") if isinstance(v, str) else v


def _groups(
    rows: list[tuple[Any, ...]], keys: list[int], cols: Sequence[Column]
) -> list[list[tuple[Any, ...]]]:
    text = {i for i in keys if cols[i].kind == Kind.STRING}
    out: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
    for r in rows:
        k = tuple(_pad_key(r[i]) if i in text else r[i] for i in keys)
        out.setdefault(k, []).append(r)
    return list(out.values())


def _int_clause(node: exp.Select, key: str) -> int | None:
    clause = node.args.get(key)
    if clause is None:
        return None
    n = clause.expression
    if not (isinstance(n, exp.Literal) and n.is_int):
        raise Unsupported(f"{key.upper()} with anything but a number over a derived table")
    return int(n.this)
