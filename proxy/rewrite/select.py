"""SELECT from one table: projections decrypted, conditions on onions, aggregates by layer.

    c                       Eq onion (RND: with its IV; DET once peeled); numbers and dates
                            without Eq: Ord; Add-only columns: HOM
    COUNT(*), COUNT(c)      COUNT on any onion column (NULL stays NULL)
    COUNT(DISTINCT c)       Eq at DET
    SUM(c) / AVG(c)         cryptdb_hom_sum over the Add onion (AVG = SUM / COUNT here)
    MIN(c) / MAX(c)         Ord at OPE (numbers and dates)
    GROUP BY c, DISTINCT    Eq at DET
    ORDER BY                by the backend on Ord at OPE when it can; otherwise (text, grouped
                            or DISTINCT queries, aggregates) here after decryption, with
                            LIMIT / OFFSET applied here too

Example:
    >>> # SELECT c FROM t WHERE id BETWEEN 1 AND 9 ORDER BY c   (c CHAR, id plain) becomes
    >>> # SELECT `c4_eq`, `c4_iv` FROM `t_1` WHERE (`c2` BETWEEN 1 AND 9)
    >>> # and the decoder sorts the decrypted values.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from sqlglot import exp

from onion.encoding import Kind
from proxy.rewrite import residual
from proxy.rewrite.decode import (
    DecoderSpec,
    OutCol,
    ReaderSpec,
    SortKey,
    column_out,
    constant_out,
    count_out,
    min_max_out,
    sum_out,
)
from proxy.rewrite.errors import Refusal, Unsupported
from proxy.rewrite.insert import only
from proxy.rewrite.plan import SMALL_ROWS, RawLit, Segment, Template
from proxy.rewrite.predicate import predicate
from proxy.rewrite.resolve import Ctx, Scope, Source, backend_table, constant, need, resolve_table
from proxy.schema import Column

_ALLOWED = {
    "joins",
    "expressions",
    "from_",
    "where",
    "group",
    "order",
    "limit",
    "offset",
    "distinct",
    "locks",
    "having",
}
AGGREGATES = (exp.Count, exp.Sum, exp.Avg, exp.Min, exp.Max)


class _Out:
    """The backend select list and the readers/columns of the client's result."""

    def __init__(self) -> None:
        self.items: list[list[Segment]] = []
        self.readers: list[ReaderSpec] = []
        self.columns: list[OutCol] = []
        self.sources: list[tuple[Source, Column] | exp.Expression | None] = []

    def add(self, segs: list[Segment]) -> int:
        self.items.append(segs)
        return len(self.items) - 1


def column_reader(ctx: Ctx, out: _Out, src: Source, col: Column, det_only: bool) -> ReaderSpec:
    ref = src.ref(col)
    if col.plain:
        return ReaderSpec("plain", (out.add([src.col(col.plain_name)]),), ref)
    if det_only:
        need(ctx, src, col, "grouping")
        return ReaderSpec("det", (out.add([src.col(col.onion_name("eq"))]),), ref)
    onion = (
        "eq"
        if "eq" in col.onions
        else "ord"
        if "ord" in col.onions and col.kind != Kind.STRING
        else "add"
    )
    ct = out.add([src.col(col.onion_name(onion))])
    layer = col.onions[onion]
    if onion == "add":
        return ReaderSpec("hom", (ct,), ref)
    if layer in ("det", "ope"):
        return ReaderSpec(layer, (ct,), ref)
    return ReaderSpec(f"{onion}_rnd", (ct, out.add([src.col(col.iv_name)])), ref)


def _arg_column(e: exp.Expression, scope: Scope) -> tuple[Source, Column]:
    arg = e.this
    if not isinstance(arg, exp.Column):
        raise Unsupported(f"{e.key.upper()} of anything but a column")
    return scope.column(arg, "field list")


def aggregate(
    e: exp.Expression, name: str, ctx: Ctx, scope: Scope, out: _Out
) -> tuple[ReaderSpec, OutCol]:
    if isinstance(e, exp.Count):
        arg = e.this
        if isinstance(arg, exp.Star):
            return ReaderSpec("int", (out.add(["COUNT(*)"]),)), count_out(name)
        if isinstance(arg, exp.Distinct):
            if len(arg.expressions) != 1 or not isinstance(arg.expressions[0], exp.Column):
                raise Unsupported("COUNT(DISTINCT ...) of anything but one column")
            src, col = scope.column(arg.expressions[0], "field list")
            if col.plain:
                return ReaderSpec(
                    "int", (out.add(["COUNT(DISTINCT ", src.col(col.plain_name), ")"]),)
                ), count_out(name)
            need(ctx, src, col, "grouping")
            return ReaderSpec(
                "int", (out.add(["COUNT(DISTINCT ", src.col(col.onion_name("eq")), ")"]),)
            ), count_out(name)
        src, col = _arg_column(e, scope)
        target = col.plain_name if col.plain else col.backend_columns()[0]
        return ReaderSpec("int", (out.add(["COUNT(", src.col(target), ")"]),)), count_out(name)
    src, col = _arg_column(e, scope)
    ref = src.ref(col)
    if isinstance(e, exp.Sum | exp.Avg):
        if col.kind not in (Kind.INT, Kind.UINT, Kind.DECIMAL):
            raise Unsupported(f"{e.key.upper()} of a non-numeric column")
        avg = isinstance(e, exp.Avg)
        scale = min(col.scale + 4, 38) if avg else col.scale
        oc = sum_out(col, name, avg)
        if col.plain:
            fn = "AVG(" if avg else "SUM("
            return ReaderSpec("decimal", (out.add([fn, src.col(col.plain_name), ")"]),)), oc
        need(ctx, src, col, "sum")
        add = src.col(col.onion_name("add"))
        total = out.add([f"cryptdb_hom_sum({add}, X'{ctx.crypto.n2_hex()}')"])
        if not avg:
            return ReaderSpec("hom", (total,), ref), oc
        count = out.add([f"COUNT({add})"])
        return ReaderSpec("avg", (total, count), ref, scale), oc
    fn = "MIN(" if isinstance(e, exp.Min) else "MAX("
    if e.expressions:
        raise Unsupported("MIN/MAX with several arguments")
    oc = min_max_out(col, name)
    if col.plain:
        return ReaderSpec("plain", (out.add([fn, src.col(col.plain_name), ")"]),), ref), oc
    if col.kind == Kind.STRING:
        raise Unsupported(f"MIN/MAX of encrypted text column {src.table.name}.{col.name}")
    need(ctx, src, col, "order")
    return ReaderSpec("ope", (out.add([fn, src.col(col.onion_name("ord")), ")"]),), ref), oc


def _items(
    node: exp.Select, scope: Scope, sql: str = ""
) -> list[tuple[exp.Expression | tuple[Source, Column], str]]:
    """The select list, each item with its result column name as MariaDB gives it: the alias,
    else a column's name as written (`A`, not the declared `a`), else the item's text."""
    items: list[tuple[exp.Expression | tuple[Source, Column], str]] = []
    for e in node.expressions:
        alias = None
        if isinstance(e, exp.Alias):
            alias, e = e.alias, e.this
        star_qual = None
        if isinstance(e, exp.Column) and isinstance(e.this, exp.Star):
            star_qual = e.table
        if isinstance(e, exp.Star) or star_qual is not None:
            matched = [s for s in scope.sources if star_qual is None or s.alias == star_qual]
            if not matched:
                raise Unsupported(f"unknown table {star_qual}")
            items.extend(((s, c), c.name) for s in matched for c in s.table.columns)
        elif isinstance(e, exp.Column):
            src, col = scope.column(e, "field list")
            items.append(((src, col), alias or e.name))
        elif (const := select_constant(e)) is not None:
            items.append((e, alias or const[1]))
        else:
            items.append((e, alias or _written(e, sql) or e.sql("mysql")))
    return items


def _written(e: exp.Expression, sql: str) -> str | None:
    """A function call's text in `sql` (from its name's position through the matching
    parenthesis, quotes respected): `count( x )` is named so by MariaDB, not `COUNT(x)`."""
    start = e.meta.get("start") if e.meta else None
    if not sql or start is None:
        return None
    depth, quote, i = 0, "", start
    while i < len(sql):
        ch = sql[i]
        if quote:
            if ch == "\\" and quote != "`":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return sql[start : i + 1]
            if depth < 0:
                return None
        i += 1
    return None


def _from(node: exp.Select, ctx: Ctx) -> tuple[Scope, list[Segment]]:
    """FROM one table, or inner / left equi-joins: `JOIN t ON a = b` where a and b are plain
    or encrypted in one join group (their Eq onions then share a DET key)."""
    from_ = node.args.get("from_")
    first = from_.this if from_ is not None else None
    joins = node.args.get("joins") or []
    if not isinstance(first, exp.Table) or first.args.get("joins"):
        raise Unsupported("SELECT from anything but tables")
    nodes = [first]
    # A RIGHT JOIN B is B LEFT JOIN A: with one join the backend is sent that, while the
    # sources keep the statement's order (SELECT * lists A's columns first).
    right = len(joins) == 1 and (joins[0].side or "") == "RIGHT"
    for j in joins:
        only(j, {"this", "on", "side", "kind"}, "JOIN")
        if not isinstance(j.this, exp.Table) or (j.side or "LEFT") not in (
            ("LEFT", "RIGHT") if right else ("LEFT",)
        ):
            raise Unsupported(
                "joins other than [INNER] JOIN, LEFT JOIN and one RIGHT JOIN on tables"
            )
        if (j.kind or "INNER") not in ("INNER", "OUTER"):
            raise Unsupported(f"{j.kind} JOIN")
        nodes.append(j.this)
    sources = []
    for i, t in enumerate(nodes):
        db, table = resolve_table(t, ctx)
        if any(s.alias == t.alias_or_name for s in sources):
            raise Unsupported(f"table alias {t.alias_or_name} used twice")
        sources.append(Source(t.alias_or_name, db, table, f"`a{i}`" if joins else None))
    scope = Scope(sources)
    sql: list[Segment] = [backend_table(sources[0].db, sources[0].table, ctx)]
    if joins:
        sql.append(" AS `a0`")
    for i, j in enumerate(joins, start=1):
        src = sources[i]
        word = " LEFT JOIN " if j.side else (" JOIN " if j.args.get("on") else ", ")
        joined = [backend_table(src.db, src.table, ctx), f" AS `a{i}`"]
        if right:  # B AS a1 LEFT JOIN A AS a0
            sql = [*joined, word, *sql]
        else:
            sql += [word, *joined]
        if j.args.get("on") is not None:
            sql += [" ON ", *predicate(j.args["on"], ctx=ctx, scope=scope, where="on clause")]
    return scope, sql


def select(node: exp.Select, *, ctx: Ctx) -> Template:
    only(node, _ALLOWED, "SELECT")
    distinct = node.args.get("distinct")
    if distinct is not None and distinct.args.get("on") is not None:
        raise Unsupported("DISTINCT ON")
    scope, from_sql = _from(node, ctx)
    db = scope.sources[0].db
    items = _items(node, scope, ctx.sql)
    group = node.args.get("group")
    group_cols: list[tuple[Source, Column]] = []
    if group is not None:
        for g in group.expressions:
            if group.args.get("rollup") or group.args.get("cube"):
                raise Unsupported("GROUP BY ... WITH ROLLUP / CUBE")
            if isinstance(g, exp.Literal) and not g.is_string and g.this.isdigit():
                group_cols.append(_group_position(g, items, ctx))  # `GROUP BY 1`, as Django
            elif isinstance(g, exp.Column):
                group_cols.append(scope.column(g, "group statement"))
            else:
                raise Unsupported("GROUP BY anything but columns")
    grouped = group is not None or any(isinstance(e, AGGREGATES) for e, _ in items)
    det_only = grouped or distinct is not None
    # ---- residual conditions, evaluated in the proxy (proxy.rewrite.residual) ----
    where = node.args.get("where")
    server_conds, residuals = residual.split_where(
        where.this if where is not None else None, ctx, scope
    )
    if residuals:
        residual.check_grouping(node)
    if grouped and (residuals or residual.text_min_max(items, scope)):
        where_sql = residual.server_where(server_conds, ctx, scope)
        return residual.aggregate_select(
            node, ctx, scope, items, from_sql, where_sql, residuals, db.name
        )
    # ---- end residual ----
    out = _Out()
    readers: list[ReaderSpec] = []
    for e, name in items:
        if isinstance(e, tuple):
            det = det_only
            if grouped and e not in group_cols:
                if not _by_primary_key(e[0], group_cols):
                    raise Unsupported(f"column {e[1].name} neither grouped nor aggregated")
                det = distinct is not None  # one row's value per group: any layer will do
            readers.append(column_reader(ctx, out, e[0], e[1], det))
            out.columns.append(column_out(e[1], name, e[0].alias, e[0].table))
            out.sources.append(e)
        elif isinstance(e, AGGREGATES):
            r, oc = aggregate(e, name, ctx, scope, out)
            readers.append(r)
            out.columns.append(oc)
            out.sources.append(e)
        elif (const := select_constant(e)) is not None:
            # Made here, never sent (`SELECT 1 AS a ... LIMIT 1`: what ORMs' exists() sends).
            # Its literal is not bound through a slot, so the plan is not cached: the
            # column's length follows the literal.
            readers.append(ReaderSpec("fixed", (), value=const[0]))
            out.columns.append(constant_out(name, const[0]))
            out.sources.append(e)
        else:
            raise Unsupported(f"{type(e).__name__.upper()} in the select list")
    sql: list[Segment] = ["SELECT DISTINCT " if distinct is not None else "SELECT "]
    select_at = len(sql)
    tail: list[Segment] = [" FROM ", *from_sql]
    where_sql: list[Segment] = []
    if residuals:  # the server's conjuncts only; the residuals' columns read as hidden items
        where_sql = residual.server_where(server_conds, ctx, scope)
    elif where is not None:
        where_sql = [" WHERE ", *predicate(where.this, ctx=ctx, scope=scope)]
    tail += where_sql
    if group_cols:
        parts = []
        for s, c in group_cols:
            if not c.plain:
                need(ctx, s, c, "grouping")
            parts.append(s.col(c.plain_name if c.plain else c.onion_name("eq")))
        tail.append(" GROUP BY " + ", ".join(parts))
    spec = DecoderSpec(out.columns, readers, database=db.name)
    spec.residual = residual.add_readers(residuals, ctx, out, readers)
    having = node.args.get("having")
    if having is not None:
        spec.having = _having(having.this, ctx, scope, out, spec, items, group_cols, grouped)
        if distinct is not None:
            raise Unsupported("HAVING with DISTINCT")
    tail += _order_and_limit(
        node, ctx, scope, out, spec, det_only, items, in_proxy=having is not None or bool(residuals)
    )
    locks = node.args.get("locks") or []
    for lock in locks:
        tail.append(" FOR UPDATE" if lock.args.get("update") else " LOCK IN SHARE MODE")
    if ctx.current_read and not locks:
        tail.append(" LOCK IN SHARE MODE")
    # Only constants selected: the backend still has to say how many rows there are.
    sql[select_at:select_at] = _select_list(out) if out.items else ["1"]
    template = Template(segments=sql + tail, decoder=spec)
    if not group_cols and distinct is None and not any(node.args.get(k) for k in _NOT_SMALL):
        small = small_aggregates(ctx, scope, items, out.columns, db.name)
        if small is not None:
            rows_out, small_spec = small
            template.small = [
                "SELECT ", *_select_list(rows_out), " FROM ", *from_sql, *where_sql,
                f" LIMIT {SMALL_ROWS + 1}",
                *(" FOR UPDATE" if lk.args.get("update") else " LOCK IN SHARE MODE"
                  for lk in locks),
                *([" LOCK IN SHARE MODE"] if ctx.current_read and not locks else []),
            ]  # fmt: skip
            template.small_decoder = small_spec
    return template


def _group_position(
    g: exp.Literal, items: list[tuple[exp.Expression | tuple[Source, Column], str]], ctx: Ctx
) -> tuple[Source, Column]:
    n = int(g.this)
    if not 1 <= n <= len(items):
        raise Refusal(1054, "42S22", f"Unknown column '{n}' in 'group statement'")
    item = items[n - 1][0]
    if not isinstance(item, tuple):
        raise Unsupported("GROUP BY the position of anything but a column")
    ctx.fix(g)  # the plan groups by this position: cached for it only
    return item


def _by_primary_key(src: Source, group_cols: list[tuple[Source, Column]]) -> bool:
    """Grouped by every column of src's primary key (`GROUP BY author.id`, as Django's
    annotate() writes it): each group holds one row of src, so its other columns are
    functionally dependent on the group and may be selected."""
    pk = next((i for i in src.table.indexes if i.primary), None)
    grouped = {c.id for s, c in group_cols if s is src}
    return pk is not None and set(pk.columns) <= grouped


def select_constant(e: exp.Expression) -> tuple[Any, str] | None:
    """(value, MariaDB's name for it) of a number, string or NULL in the select list, with
    parentheses and a minus sign; None for anything else (or floats: a DOUBLE literal)."""
    neg = False
    while isinstance(e, exp.Paren | exp.Neg):
        neg ^= isinstance(e, exp.Neg)
        e = e.this
    if isinstance(e, exp.Null):
        return (None, "NULL") if not neg else None
    if not isinstance(e, exp.Literal):
        return None
    if e.is_string:
        return None if neg else (e.this, e.this)
    text = e.this
    if not re.fullmatch(r"\d+(\.\d*)?|\.\d+", text):
        return None  # 1e3, 0x1F: other types
    value: Any = Decimal(text) if "." in text else int(text)
    if neg:
        value = -value
    return value, ("-" if neg else "") + text


def readable_without_hom(col: Column) -> bool:
    """Whether column_reader reads the column from an onion cheaper to decrypt than the Add
    onion (a Paillier decryption, ~3 ms a row)."""
    return col.plain or "eq" in col.onions or ("ord" in col.onions and col.kind != Kind.STRING)


def _select_list(out: _Out) -> list[Segment]:
    body: list[Segment] = []
    for i, segs in enumerate(out.items):
        if i:
            body.append(", ")
        body += segs
    return body


# ---- SUM / AVG over few rows: in the proxy ---------------------------------------------------

# An ungrouped SUM / AVG over at most SMALL_ROWS rows is computed here from the rows' Eq (or
# Ord) values, which the server already holds and the WHERE already selected: nothing new is
# revealed, and the plan falls back to cryptdb_hom_sum when the rows are more.
_NOT_SMALL = ("order", "limit", "offset", "having")


def small_aggregates(
    ctx: Ctx,
    scope: Scope,
    items: list[tuple[exp.Expression | tuple[Source, Column], str]],
    columns: list[OutCol],
    database: str,
) -> tuple[_Out, DecoderSpec] | None:
    """The rows to read and the decoder that aggregates them, when every item is COUNT(*),
    COUNT(c), SUM(c) or AVG(c) and some SUM / AVG is of an encrypted column readable without
    HOM; else None."""
    out = _Out()
    readers: list[ReaderSpec] = []
    aggs: list[tuple[str, int | None, int]] = []  # (function, reader index, scale)
    worth = False
    for e, _ in items:
        if isinstance(e, exp.Count) and isinstance(e.this, exp.Star):
            aggs.append(("count*", None, 0))
            continue
        if not isinstance(e, exp.Count | exp.Sum | exp.Avg) or not isinstance(e.this, exp.Column):
            return None
        src, col = scope.column(e.this, "field list")
        if not readable_without_hom(col):
            return None  # Add-only: every row would cost a Paillier decryption
        worth = worth or (not col.plain and not isinstance(e, exp.Count))
        readers.append(column_reader(ctx, out, src, col, False))
        fn = "count" if isinstance(e, exp.Count) else "sum" if isinstance(e, exp.Sum) else "avg"
        aggs.append((fn, len(readers) - 1, min(col.scale + 4, 38)))
    if not worth:
        return None
    return out, DecoderSpec(columns, readers, database=database, aggregate=aggs)


def _having(
    cond: exp.Expression,
    ctx: Ctx,
    scope: Scope,
    out: _Out,
    spec: DecoderSpec,
    items: list,
    group_cols: list[tuple[Source, Column]],
    grouped: bool,
) -> object:
    """HAVING, for the decoder to evaluate (proxy.rewrite.having): what it names is read as
    hidden items."""
    from proxy.rewrite.having import plan_having

    def add_reader(x: exp.Expression | tuple[Source, Column]) -> int:
        if isinstance(x, tuple):
            spec.readers.append(column_reader(ctx, out, x[0], x[1], True))
        else:
            if not grouped:
                raise Unsupported("HAVING with an aggregate in a query that is not grouped")
            spec.readers.append(aggregate(x, "", ctx, scope, out)[0])
        return len(spec.readers) - 1

    return plan_having(cond, ctx, scope, items, group_cols, add_reader)


def _order_and_limit(
    node: exp.Select,
    ctx: Ctx,
    scope: Scope,
    out: _Out,
    spec: DecoderSpec,
    det_only: bool,
    items: list,
    in_proxy: bool = False,
) -> list[Segment]:
    """in_proxy: LIMIT / OFFSET after a filter the proxy applies (HAVING, residuals). An
    ORDER BY the backend can do exactly stays there: the filter keeps the rows' order."""
    order = node.args.get("order")
    keys: list[tuple[int | tuple[Source, Column], bool]] = []  # (item index | column, desc)
    for o in order.expressions if order is not None else []:
        e, desc = o.this, bool(o.args.get("desc"))
        hit = None
        if isinstance(e, exp.Column) and not e.table:
            hit = next((i for i, (_, n) in enumerate(items) if n.lower() == e.name.lower()), None)
        if hit is None and isinstance(e, exp.Column):
            keys.append((scope.column(e, "order clause"), desc))
        elif hit is None and isinstance(e, AGGREGATES):
            hit = next(
                (i for i, (x, _) in enumerate(items) if not isinstance(x, tuple) and x == e), None
            )
            if hit is None:
                raise Unsupported("ORDER BY an aggregate that is not selected")
            keys.append((hit, desc))
        elif hit is not None:
            keys.append((hit, desc))
        elif isinstance(e, exp.Literal) and not e.is_string and e.this.isdigit():
            n = int(e.this)  # `ORDER BY 1`, as Django writes it: the n-th result column
            if not 1 <= n <= len(items):
                raise Refusal(1054, "42S22", f"Unknown column '{n}' in 'order clause'")
            ctx.fix(e)
            keys.append((n - 1, desc))
        else:
            raise Unsupported("ORDER BY anything but columns, aliases and selected aggregates")
    tail: list[Segment] = []
    backend = not det_only and all(_backend_orderable(k, items) for k, _ in keys)
    limit, offset = node.args.get("limit"), node.args.get("offset")
    lim = _limit_index(limit, ctx) if limit is not None else None
    off = _limit_index(offset, ctx) if offset is not None else None
    if keys and backend:
        parts: list[str] = []
        for k, desc in keys:
            s, c = items[k][0] if isinstance(k, int) else k
            if c.plain:
                name = c.plain_name
            else:
                need(ctx, s, c, "order")
                name = c.onion_name("ord")
            parts.append(s.col(name) + (" DESC" if desc else ""))
        tail.append(" ORDER BY " + ", ".join(parts))
    elif keys:
        for k, desc in keys:
            idx, text = _sort_reader(k, ctx, out, spec, det_only, items)
            spec.sort.append(SortKey(idx, desc, text))
        spec.limit, spec.offset = lim, off
        return tail
    if in_proxy:
        spec.limit, spec.offset = lim, off
        return tail
    if lim is not None:
        tail += [" LIMIT ", RawLit(lim)]
    if off is not None:
        tail += [" OFFSET ", RawLit(off)]
    return tail


def _limit_index(node: exp.Expression, ctx: Ctx) -> int:
    c = constant(node.expression, ctx)
    if c is None or c[1]:
        raise Unsupported("LIMIT / OFFSET other than a number")
    return c[0]


def _backend_orderable(k: int | tuple[Source, Column], items: list) -> bool:
    if isinstance(k, int):
        if not isinstance(items[k][0], tuple):
            return False
        k = items[k][0]
    col = k[1]
    # Without OPE (text, no Ord onion, or a policy that forbids it) the proxy sorts instead.
    return col.plain or (
        col.kind != Kind.STRING and "ord" in col.onions and col.allows("ord", "ope")
    )


def _sort_reader(
    k: int | tuple[Source, Column],
    ctx: Ctx,
    out: _Out,
    spec: DecoderSpec,
    det_only: bool,
    items: list,
) -> tuple[int, str | None]:
    if isinstance(k, tuple):
        hit = next(
            (
                i
                for i, (x, _) in enumerate(items)
                if isinstance(x, tuple) and x[0] is k[0] and x[1].id == k[1].id
            ),
            None,
        )
        if hit is None:
            if det_only:
                raise Unsupported(
                    "ORDER BY a column that is not selected, with DISTINCT or GROUP BY"
                )
            spec.readers.append(column_reader(ctx, out, k[0], k[1], False))
            return len(spec.readers) - 1, _text_kind(k[1])
        k = hit
    x = items[k][0]
    return k, _text_kind(x[1]) if isinstance(x, tuple) else None


def _text_kind(col: Column) -> str | None:
    if col.kind != Kind.STRING:
        return None
    return "bin" if col.binary_collation() else "ci"
