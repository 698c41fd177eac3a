"""UPDATE and DELETE on one table.

SET c = k        every onion of c re-encrypted under a fresh IV for c (one IV per statement:
                 the rows it changes get the same value, which the server sees anyway)
SET c = NULL     NULL in every onion, fresh IV
SET c = c + k    (or c - k, k + c)
                 Add-only columns: in place, c_add = cryptdb_hom_add(c_add, Enc(k), n2).
                 Columns with other onions: read-modify-write, so Eq/Ord never go stale:
                 SELECT c_iv, <c's decryptable onion> ... FOR UPDATE, then one UPDATE that
                 maps each old IV to the new onion values (CASE c_iv WHEN ... END) under
                 fresh IVs, restricted to `(<where>) AND c_iv IN (...)`. The IV identifies
                 the value: rows sharing an IV were written by one statement with one value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlglot import exp

from onion import new_iv
from proxy.rewrite import residual
from proxy.rewrite.errors import Unsupported, out_of_range
from proxy.rewrite.insert import default_values, null_values, onion_values, only
from proxy.rewrite.literals import _number, column_value
from proxy.rewrite.plan import (
    Binder,
    ColRef,
    Enc,
    Guard,
    RawLit,
    ReadModifyWrite,
    Segment,
    Template,
    hexlit,
    quote_ident,
    write_guards,
)
from proxy.rewrite.predicate import predicate
from proxy.rewrite.resolve import (
    Ctx,
    Scope,
    Source,
    backend_table,
    constant,
    is_default,
    is_null,
    need,
    resolve_table,
)
from proxy.rewrite.select import column_reader
from proxy.schema import ONIONS, Column


def _single_table(node: exp.Expression, ctx: Ctx) -> Source:
    t = node.this
    if not isinstance(t, exp.Table) or t.args.get("joins") or node.args.get("tables"):
        raise Unsupported(f"{node.key.upper()} on several tables")
    db, table = resolve_table(t, ctx)
    return Source(t.alias_or_name, db, table)


def _order_limit(node: exp.Expression, ctx: Ctx, scope: Scope) -> list[Segment]:
    out: list[Segment] = []
    order = node.args.get("order")
    if order is not None:
        parts = []
        for o in order.expressions:
            if not isinstance(o.this, exp.Column):
                raise Unsupported("ORDER BY anything but columns")
            src, col = scope.column(o.this, "order clause")
            if col.plain:
                name = col.plain_name
            else:
                need(ctx, src, col, "order")
                name = col.onion_name("ord")
            parts.append(src.col(name) + (" DESC" if o.args.get("desc") else ""))
        out.append(" ORDER BY " + ", ".join(parts))
    limit = node.args.get("limit")
    if limit is not None:
        c = constant(limit.expression, ctx)
        if c is None or c[1]:
            raise Unsupported("LIMIT other than a number")
        out += [" LIMIT ", RawLit(c[0])]
    return out


def delete(node: exp.Delete, *, ctx: Ctx) -> Template:
    only(node, {"this", "where", "order", "limit"}, "DELETE")
    src = _single_table(node, ctx)
    scope = Scope([src])
    sql: list[Segment] = ["DELETE FROM ", backend_table(src.db, src.table, ctx)]
    where = node.args.get("where")
    if where is not None:
        # conditions the proxy evaluates (proxy.rewrite.residual): the matching rows first
        server, residuals = residual.split_where(where.this, ctx, scope)
        if residuals:
            return residual.write_template(node, ctx, src, sql[1], server, residuals, sql)
        sql += [" WHERE ", *predicate(where.this, ctx=ctx, scope=scope)]
    return Template(segments=sql + _order_limit(node, ctx, scope))


def _increment(e: exp.Expression, col: Column, scope: Scope, ctx: Ctx) -> tuple[int, bool] | None:
    """(literal index, negate) when e is `col + k`, `k + col` or `col - k` (parenthesized
    or not: SQLAlchemy writes `SET a=(t.a + 1)`)."""
    while isinstance(e, exp.Paren):
        e = e.this
    if not isinstance(e, exp.Add | exp.Sub):
        return None
    left, right = e.this, e.expression
    if isinstance(e, exp.Add) and not isinstance(left, exp.Column):
        left, right = right, left
    if not isinstance(left, exp.Column) or scope.column(left, "field list")[1] is not col:
        return None
    c = constant(right, ctx)
    if c is None:
        return None
    return c[0], c[1] != isinstance(e, exp.Sub)


def update(node: exp.Update, *, ctx: Ctx) -> Template:
    only(node, {"this", "expressions", "where", "order", "limit"}, "UPDATE")
    src = _single_table(node, ctx)
    scope = Scope([src])
    sets: list[Segment] = []
    rmw: tuple[Column, tuple[int, bool]] | None = None
    for a in node.expressions:
        if not isinstance(a, exp.EQ) or not isinstance(a.this, exp.Column):
            raise Unsupported("this SET clause")
        s, col = scope.column(a.this, "field list")
        ref = s.ref(col)
        value = a.expression
        if col.plain:
            segs = _plain_set(value, col, s, scope, ctx)
        else:
            inc = _increment(value, col, scope, ctx)
            if inc is not None and set(col.onions) == {"add"}:
                need(ctx, s, col, "sum")
                add = s.col(col.onion_name("add"))
                segs = [
                    f"{add} = cryptdb_hom_add({add}, ",
                    Enc(ref, "hom_const", inc[0], inc[1], True),
                    f", X'{ctx.crypto.n2_hex()}')",
                ]
            elif inc is not None:
                if rmw is not None:
                    raise Unsupported("several increments of encrypted columns in one UPDATE")
                rmw = (col, inc)
                continue
            else:
                segs = _assign(_encrypted_value(value, ref, col, ("set", col.id), ctx), col, s)
        if sets:
            sets.append(", ")
        sets += segs
    where = node.args.get("where")
    table_sql = backend_table(src.db, src.table, ctx)
    if where is not None:
        # conditions the proxy evaluates (proxy.rewrite.residual): the matching rows first
        server, residuals = residual.split_where(where.this, ctx, scope)
        if residuals:
            if rmw is not None:
                raise Unsupported(
                    "an increment of an encrypted column with a condition the proxy evaluates"
                )
            head: list[Segment] = ["UPDATE ", table_sql, " SET ", *sets]
            return residual.write_template(node, ctx, src, table_sql, server, residuals, head)
    cond = predicate(where.this, ctx=ctx, scope=scope) if where is not None else None
    if rmw is not None:
        if node.args.get("order") or node.args.get("limit"):
            raise Unsupported("ORDER BY / LIMIT with an increment of an encrypted column")
        return Template(rmw=_rmw_spec(ctx, src, scope, table_sql, rmw[0], rmw[1], sets, cond))
    sql: list[Segment] = ["UPDATE ", table_sql, " SET ", *sets]
    if cond is not None:
        sql += [" WHERE ", *cond]
    return Template(segments=sql + _order_limit(node, ctx, scope))


def _plain_set(
    value: exp.Expression, col: Column, s: Source, scope: Scope, ctx: Ctx
) -> list[Segment]:
    head = s.col(col.plain_name) + " = "
    if is_null(value):
        return [head + "NULL"]
    if is_default(value):
        return [head + "DEFAULT"]
    c = constant(value, ctx)
    if c is not None:
        return [head, RawLit(*c)]
    while isinstance(value, exp.Paren):
        value = value.this
    if isinstance(value, exp.Add | exp.Sub) and isinstance(value.this, exp.Column):
        other = scope.column(value.this, "field list")
        k = constant(value.expression, ctx)
        if other[1].plain and k is not None:
            op = " + " if isinstance(value, exp.Add) else " - "
            return [head + other[0].col(other[1].plain_name) + op, RawLit(*k)]
    raise Unsupported(f"this value for column {col.name}")


def _encrypted_value(
    value: exp.Expression, ref: ColRef, col: Column, iv_key: object, ctx: Ctx
) -> list[Segment]:
    if is_null(value):
        return null_values(col, iv_key)
    if is_default(value):
        return default_values(ref, col, iv_key)
    c = constant(value, ctx)
    if c is None:
        raise Unsupported(f"this value for encrypted column {col.name}")
    return onion_values(ref, col, iv_key, index=c[0], negate=c[1], store=True)


def _assign(values: list[Segment], col: Column, s: Source) -> list[Segment]:
    out: list[Segment] = []
    for name, v in zip(col.backend_columns(), values, strict=True):
        if out:
            out.append(", ")
        out += [s.col(name) + " = ", v]
    return out


@dataclass
class RmwSpec:
    """`UPDATE ... SET c = c + k` on a column whose Eq/Ord onions must stay correct."""

    select: list[Segment]
    reader: Any  # ReaderSpec over (iv, ciphertext...) positions
    ref: ColRef
    delta: tuple[int, bool]
    table_sql: str
    others: list[Segment]
    cond: list[Segment] | None

    def write_guards(self) -> tuple[Guard, ...]:
        """The column's own Eq / Ord onions still at RND (rewritten under fresh IVs) and
        those the other SET items store."""
        dbid, tid, col = self.ref
        own = [(dbid, tid, col.id, o) for o in ("eq", "ord") if col.onions.get(o) == "rnd"]
        return tuple(dict.fromkeys([*own, *write_guards(self.others)]))

    def bind(self, b: Binder) -> ReadModifyWrite:
        select_sql = b.render(self.select)
        others = b.render(self.others)
        cond = b.render(self.cond) if self.cond is not None else None
        col = self.ref[2]
        k = _delta(col, b.lits[self.delta[0]], self.delta[1])
        read = self.reader.make(b.crypto)
        cc = b.crypto.column(*self.ref)

        def finish(rows: Sequence[Sequence[Any]]) -> str | None:
            new: dict[bytes, Any] = {}
            for row in rows:
                iv = bytes(row[0])
                if iv not in new:
                    v = read(row)
                    new[iv] = None if v is None else _checked(col, v + k)
            if not new:
                return None
            return _rmw_update(self.table_sql, col, cc, new, others, cond)

        return ReadModifyWrite(select_sql, finish)


def _delta(col: Column, lit: Any, negate: bool) -> int | Decimal:
    """k of `c = c + k` exactly, as MariaDB adds it: neither rounded to the column's scale nor
    range-checked (u - 1 on an UNSIGNED column); only the sum is stored, so only it is."""
    d = _number(col, lit, negate)
    return int(d) if d == d.to_integral_value() else d


def _checked(col: Column, v: Any) -> Any:
    from proxy.rewrite.literals import Lit

    try:
        return column_value(col, Lit(str(v), False, "", 0), False, store=True)
    except Exception:
        raise out_of_range(col.name) from None


def _rmw_update(
    table_sql: str, col: Column, cc: Any, new: dict[bytes, Any], others: str, cond: str | None
) -> str:
    fresh = {old: new_iv() for old in new}
    iv_col = quote_ident(col.iv_name)
    sets = []
    for onion in ONIONS:
        layer = col.onions.get(onion)
        if layer is None:
            continue
        cases = []
        for old, v in new.items():
            if v is None:
                ct = None
            elif onion == "eq":
                ct = cc.det(v) if layer == "det" else cc.eq(v, fresh[old])
            elif onion == "ord":
                ct = cc.ope(v) if layer == "ope" else cc.ord(v, fresh[old])
            else:
                ct = cc.hom(v)
            cases.append(f" WHEN {hexlit(old)} THEN {'NULL' if ct is None else hexlit(ct)}")
        sets.append(f"{quote_ident(col.onion_name(onion))} = CASE {iv_col}{''.join(cases)} END")
    if others:
        sets.append(others)
    # Last: MariaDB evaluates SET items left to right, the CASEs above need the old IV.
    sets.append(
        f"{iv_col} = CASE {iv_col}"
        + "".join(f" WHEN {hexlit(o)} THEN {hexlit(f)}" for o, f in fresh.items())
        + " END"
    )
    where = f"({cond}) AND " if cond is not None else ""
    ivs = ", ".join(hexlit(o) for o in new)
    return f"UPDATE {table_sql} SET {', '.join(sets)} WHERE {where}{iv_col} IN ({ivs})"


def _rmw_spec(
    ctx: Ctx,
    src: Source,
    scope: Scope,
    table_sql: str,
    col: Column,
    delta: tuple[int, bool],
    others: list[Segment],
    cond: list[Segment] | None,
) -> RmwSpec:
    from proxy.rewrite.select import _Out

    out = _Out()
    out.add([src.col(col.iv_name)])
    reader = column_reader(ctx, out, src, col, False)
    select: list[Segment] = ["SELECT "]
    for i, segs in enumerate(out.items):
        select += ([", "] if i else []) + segs
    select += [" FROM ", table_sql]
    if cond is not None:
        select += [" WHERE ", *cond]
    select.append(" FOR UPDATE")
    return RmwSpec(select, reader, src.ref(col), delta, table_sql, others, cond)
