"""Derived tables (a subquery in FROM) over the proxy's tables, evaluated by the proxy.

    SELECT <outer> FROM (SELECT <inner>) AS x [WHERE ...] [GROUP BY ...] [HAVING ...]
                                               [ORDER BY ...] [LIMIT ...]

The backend could only run the outer query on the inner one's onions if every operation of
both were served by one onion of each column; instead the inner SELECT runs as a statement
of its own (planned, peeled, cached like any SELECT, at most MAX_ROWS rows: it is read with
LIMIT MAX_ROWS + 1), its rows are decrypted, and the outer query is evaluated here over
them. Nothing but the inner statement reaches the server. Plan: `Derived(inner, finish)`.

Evaluated here, with MariaDB's semantics (proxy.rewrite.derived_eval): the outer select list
of the derived table's columns, `*`, aliases and COUNT / SUM / AVG / MIN / MAX of a column
(COUNT(*), COUNT(DISTINCT c)); WHERE and HAVING as proxy.rewrite.having evaluates HAVING
(comparisons with constants or columns of the same kind, IN lists, BETWEEN, IS NULL, AND /
OR / NOT); GROUP BY and DISTINCT; ORDER BY (names, aliases, positions, aggregates); LIMIT /
OFFSET. Text is compared, grouped and deduplicated as a `_bin` collation does (PAD SPACE);
on other collations only sorted (as the proxy's ORDER BY emulates them). Refused (1235):
anything else in the outer query (expressions, functions, LIKE, subqueries, joins of a
derived table with other tables, window functions), non-aggregated columns of a grouped
query, derived tables over tables the proxy did not create mixed with its own, and more than
MAX_ROWS rows.

Result metadata is MariaDB's (checked against it by tests/test_proxy_derived.py): a
derived table MariaDB merges into the outer query (no DISTINCT, GROUP BY, aggregate, HAVING,
LIMIT or UNION inside) keeps the inner column's definition under the derived table's alias as
table and org_table; one it materializes has no database, the alias as table, the base table
as org_table and its temporary table's flags (key flags dropped).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlglot import exp

from proxy.protocol.errors import MysqlError
from proxy.rewrite.decode import Decoder
from proxy.rewrite.errors import Unsupported
from proxy.rewrite.insert import only
from proxy.rewrite.plan import Derived
from proxy.rewrite.resolve import Ctx

MAX_ROWS = 10_000  # as INSERT ... SELECT: every row is held and decrypted in the proxy
_OUTER_ARGS = {"expressions", "from_", "where", "group", "having", "order", "limit", "offset"}
_OUTER_ARGS |= {"distinct", "locks", "kind"}


def derived_source(node: exp.Expression) -> exp.Subquery | None:
    """The subquery in a SELECT's FROM or JOIN, if any (its first)."""
    if not isinstance(node, exp.Select):
        return None
    from_ = node.args.get("from_")
    refs = [from_.this] if from_ is not None else []
    refs += [j.this for j in node.args.get("joins") or []]
    return next((r for r in refs if isinstance(r, exp.Subquery)), None)


def passes_rows(node: exp.Select) -> bool:
    """Whether a SELECT over a derived table hands the derived table's rows on as they are
    (every row, columns only: `SELECT * FROM (SELECT id FROM t WHERE ...) AS x`, the idiom
    that works around MariaDB's error 1093): its values and rows are then the inner
    statement's, which the server selected itself."""
    if any(node.args.get(k) for k in ("where", "having", "group", "distinct", "limit")):
        return False
    if node.args.get("offset") or node.args.get("joins"):
        return False
    items = [e.this if isinstance(e, exp.Alias) else e for e in node.expressions]
    return all(isinstance(e, exp.Star | exp.Column) for e in items)


def plan_derived(node: exp.Select, ctx: Ctx) -> Derived:
    from proxy.rewrite.derived_eval import Outer
    from proxy.rewrite.subquery import has_subqueries

    sub = derived_source(node)
    assert sub is not None
    if node.args.get("joins"):
        raise Unsupported("a derived table joined with other tables")
    distinct = node.args.get("distinct")
    if node.args.get("kind") or (distinct is not None and distinct.args.get("on")):
        raise Unsupported("this SELECT over a derived table")
    only(node, _OUTER_ARGS, "a SELECT over a derived table")
    alias = sub.args.get("alias")
    if alias is None or not alias.name:
        # MariaDB's parser requires it (1064; MySQL's 1248 names it)
        raise MysqlError(
            1064, "42000", "You have an error in your SQL syntax: a derived table needs an alias"
        )
    if alias.columns:
        raise Unsupported("a derived table with a column list")
    only(sub, {"this", "alias"}, "a derived table")
    inner = sub.this
    if not isinstance(inner, exp.Select | exp.Union):
        raise Unsupported("this kind of derived table")
    outer = node.copy()
    outer.set("from_", None)
    if has_subqueries(outer):
        raise Unsupported("subqueries in a SELECT over a derived table")
    evaluation = Outer(outer, alias.name, ctx, _materialized(inner))
    inner_sql = _inner_text(inner, node.args.get("locks") or [])
    origins = _origins(inner, ctx)

    def finish(
        results: Sequence[tuple[Decoder | None, list[tuple[Any, ...]]]],
    ) -> tuple[Decoder, list[tuple[Any, ...]]]:
        decoder, rows = results[0]
        if decoder is None:
            raise Unsupported("a derived table over tables the proxy did not create")
        if len(rows) > MAX_ROWS:
            raise Unsupported(f"a derived table of more than {MAX_ROWS} rows")
        return evaluation.run(decoder, rows, origins)

    return Derived([inner_sql], finish)


def _materialized(inner: exp.Expression) -> bool:
    """Whether MariaDB materializes the derived table (a temporary table) rather than merge
    it into the outer query: its derived_merge rules (sql/sql_derived.cc)."""
    from proxy.rewrite.select import AGGREGATES

    if not isinstance(inner, exp.Select):
        return True
    if any(inner.args.get(k) for k in ("distinct", "group", "having", "limit", "offset")):
        return True
    return any(item.find(*AGGREGATES) is not None for item in inner.expressions)


def _inner_text(inner: exp.Expression, locks: list[exp.Expression]) -> str:
    """The inner statement as it is sent to be planned: at most MAX_ROWS + 1 rows (more are
    refused), locked as the outer query asked."""
    inner = inner.copy()
    if isinstance(inner, exp.Select):
        limit = inner.args.get("limit")
        cap = exp.Literal.number(MAX_ROWS + 1)
        if limit is None:
            inner.set("limit", exp.Limit(expression=cap))
        else:
            n = limit.expression
            if isinstance(n, exp.Literal) and n.is_int and int(n.this) > MAX_ROWS + 1:
                limit.set("expression", cap)
    text = inner.sql(dialect="mysql")
    for lock in locks:
        if not isinstance(inner, exp.Select):
            raise Unsupported("a locking read of a derived table of a UNION")
        # (sqlglot would write LOCK IN SHARE MODE as FOR SHARE, which MariaDB lacks)
        text += " FOR UPDATE" if lock.args.get("update") else " LOCK IN SHARE MODE"
    return text


def _origins(inner: exp.Expression, ctx: Ctx) -> list[str | None] | None:
    """Per inner select item, the plaintext table a MIN / MAX reads (MariaDB's temporary
    table names it as org_table); None for other items, and None for a select list with *
    (its items are plain columns, which name their table themselves)."""
    if not isinstance(inner, exp.Select):
        return None
    if any(isinstance(e, exp.Star) or isinstance(e.this, exp.Star) for e in inner.expressions):
        return None
    tables = []
    for t in inner.find_all(exp.Table):
        db = t.args.get("db")
        table = ctx.schema.table(db.name if db else ctx.database, t.name)
        if table is not None:
            tables.append((t.alias_or_name, table))
    out: list[str | None] = []
    for e in inner.expressions:
        e = e.this if isinstance(e, exp.Alias) else e
        name = None
        if isinstance(e, exp.Min | exp.Max) and isinstance(e.this, exp.Column):
            col = e.this
            name = next(
                (
                    t.name
                    for a, t in tables
                    if (not col.table or col.table == a) and t.column(col.name) is not None
                ),
                None,
            )
        out.append(name)
    return out
