"""INSERT INTO t [(cols)] SELECT ...: the SELECT decided by the proxy, its rows inserted.

The backend cannot move values between encrypted columns: each column has keys of its own
(and a plain target would receive plaintext). So the proxy runs the SELECT as a statement of
its own (peels, subqueries, UNION as usual), decrypts its rows, and carries out

    INSERT INTO t [(cols)] VALUES (row 1), (row 2), ... [ON DUPLICATE KEY UPDATE ...]

through the ordinary rewrite, which encrypts every value for the column it lands in, with
fresh IVs. Inner read and INSERT run in one transaction (the client's, or one of our own),
the rows read locked (LOCK IN SHARE MODE) as MariaDB's INSERT ... SELECT locks them.

Fail closed: a value read from an encrypted column may only land in an encrypted column
(in a plain column, or a table the proxy did not create, it would reach the server in
plaintext): refused. At most MAX_ROWS rows pass through the proxy this way.
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from proxy.rewrite.errors import Unsupported
from proxy.rewrite.plan import SubqueriesFirst
from proxy.rewrite.resolve import Ctx
from proxy.rewrite.subquery import _selected_in_proxy, _sensitive
from proxy.rewrite.subquery_values import literal as _literal
from proxy.schema import Column

MAX_ROWS = 10_000
NOTHING = "DO 0"  # no row selected: an OK with no affected row, as MariaDB answers


def plan_insert_select(node: exp.Insert, ctx: Ctx) -> SubqueriesFirst:
    source = node.expression
    if not isinstance(source, exp.Select | exp.Union):
        raise Unsupported("INSERT from this source")
    if node.args.get("alternative"):
        raise Unsupported("REPLACE ... SELECT")
    if isinstance(source, exp.Select) and source.args.get("locks"):
        raise Unsupported("INSERT ... SELECT ... FOR UPDATE")
    targets = _target_columns(node, ctx)
    decided = _selected_in_proxy(source, ctx)
    if decided is not None and (not targets or any(t is None or t.plain for t in targets)):
        # e.g. a COUNT the proxy made over rows it selected: the server could not compute it
        raise Unsupported(
            f"INSERT ... SELECT whose rows the proxy selects itself ({decided}) into a "
            "column that is not encrypted (they would reach the server in plaintext)"
        )
    for sel in [source] if isinstance(source, exp.Select) else source.find_all(exp.Select):
        for i, origin in enumerate(_origins(sel, ctx)):
            landing = targets[i] if i < len(targets) else None
            if origin is not None and (landing is None or landing.plain):
                raise Unsupported(
                    f"INSERT ... SELECT of encrypted column {origin} into a column that is "
                    "not encrypted (its values would reach the server in plaintext)"
                )
    inner = source.copy()
    if isinstance(inner, exp.Select) and inner.args.get("limit") is None:
        inner.set("limit", exp.Limit(expression=exp.Literal.number(MAX_ROWS + 1)))
    inner_sql = inner.sql(dialect="mysql") + " LOCK IN SHARE MODE"
    if isinstance(inner, exp.Union):
        inner_sql = inner.sql(dialect="mysql")  # branches are read one by one, unlocked
    template = node.copy()

    def outer(results: list[list[tuple[Any, ...]]]) -> str:
        rows = results[0]
        if len(rows) > MAX_ROWS:
            raise Unsupported(f"INSERT ... SELECT of more than {MAX_ROWS} rows")
        if not rows:
            return NOTHING
        out = template.copy()
        tuples = [exp.Tuple(expressions=[_literal(v) for v in row]) for row in rows]
        out.set("expression", exp.Values(expressions=tuples))
        return out.sql(dialect="mysql")

    return SubqueriesFirst([inner_sql], outer, write=True)


def _origins(sel: exp.Select, ctx: Ctx) -> list[str | None]:
    """Per selected value, the encrypted column it may come from (None: not encrypted).
    `*` of one table of the proxy's counts column by column; otherwise subquery._sensitive
    decides each item (fail closed: any doubt names an encrypted origin)."""
    out: list[str | None] = []
    from_ = sel.args.get("from_")
    only = from_.this if from_ is not None and not sel.args.get("joins") else None
    for item in sel.expressions:
        star = isinstance(item, exp.Star) or (
            isinstance(item, exp.Column) and isinstance(item.this, exp.Star)
        )
        if star and isinstance(only, exp.Table):
            table = ctx.schema.table(only.db or ctx.database, only.name)
            if table is not None:
                out += [None if c.plain else f"{table.name}.{c.name}" for c in table.columns]
                continue
        one = sel.copy()
        one.set("expressions", [item.copy()])
        origin = _sensitive(one, ctx)
        if star and origin is not None:
            raise Unsupported("INSERT ... SELECT * from several tables")
        out.append(origin)
    return out


def _target_columns(node: exp.Insert, ctx: Ctx) -> list[Column | None]:
    """The columns the selected values land in, in order; None: not a column of the
    proxy's tables (a plain table: whatever lands there is sent as it is)."""
    target = node.this
    names = [i.name for i in target.expressions] if isinstance(target, exp.Schema) else None
    table_node = target.this if isinstance(target, exp.Schema) else target
    if not isinstance(table_node, exp.Table):
        raise Unsupported("INSERT into this target")
    database = table_node.db or ctx.database
    table = ctx.schema.table(database, table_node.name) if database else None
    if table is None:
        return [None] * (len(names) if names is not None else 0)
    if names is None:
        return list(table.columns)
    return [table.column(n) for n in names]
