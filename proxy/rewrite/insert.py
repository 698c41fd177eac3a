"""INSERT INTO t [(cols)] VALUES (...), ... : every value into every onion of its column.

Each row gets a fresh IV per encrypted column (drawn at bind time). NULL stays NULL in every
onion (the IV is still filled). Omitted encrypted columns get their DEFAULT encrypted here;
omitted plain columns are left to the backend (AUTO_INCREMENT, CURRENT_TIMESTAMP).

Example:
    >>> # INSERT INTO t (k) VALUES (5) becomes
    >>> # INSERT INTO `t_1` (`c3_eq`, `c3_ord`, `c3_add`, `c3_iv`)
    >>> #   VALUES (X'<eq>', X'<ord>', X'<add>', X'<iv>')
"""

from __future__ import annotations

from sqlglot import exp

from proxy.rewrite.errors import Refusal, Unsupported, no_default, not_null
from proxy.rewrite.literals import Lit, column_value
from proxy.rewrite.plan import ColRef, Enc, IvSlot, RawLit, Segment, Template, quote_ident
from proxy.rewrite.resolve import Ctx, backend_table, constant, is_default, is_null, resolve_table
from proxy.schema import ONIONS, Column

_ALLOWED = {"this", "expression", "ignore", "conflict", "alternative", "returning"}


def only(node: exp.Expression, allowed: set[str], what: str) -> None:
    """Refuse a node that carries any clause or flag the rewriter does not handle."""
    for key, value in node.args.items():
        if key not in allowed and value not in (None, False, [], ""):
            raise Unsupported(f"{what} with {key.upper()}")


def onion_values(ref: ColRef, col: Column, iv_key: object, **src: object) -> list[Segment]:
    """One value in every onion of `col`, then its IV (the backend_columns() order)."""
    out: list[Segment] = []
    for onion in ONIONS:
        layer = col.onions.get(onion)
        if layer is None:
            continue
        how = {
            "eq": "det" if layer == "det" else "eq",
            "ord": "ope" if layer == "ope" else "ord",
            "add": "hom",
            "search": "search",
        }[onion]
        out.append(Enc(ref, how, iv_key=iv_key if how in ("eq", "ord") else None, **src))  # type: ignore[arg-type]
    if col.has_iv:
        out.append(IvSlot(iv_key))
    return out


def null_values(col: Column, iv_key: object) -> list[Segment]:
    if not col.nullable:
        raise not_null(col.name)
    return ["NULL"] * len(col.onions) + ([IvSlot(iv_key)] if col.has_iv else [])


def default_values(ref: ColRef, col: Column, iv_key: object) -> list[Segment]:
    if not col.has_default:
        if col.nullable:
            return null_values(col, iv_key)
        raise no_default(col.name)
    if col.default is None:
        return null_values(col, iv_key)
    text, is_string, neg = col.default
    value = column_value(col, Lit(text, is_string, "", 0), neg, store=True)
    return onion_values(ref, col, iv_key, fixed=value)


def insert(node: exp.Insert, *, ctx: Ctx) -> Template:
    only(node, _ALLOWED, "INSERT")
    target = node.this
    names: list[str] | None = None
    if isinstance(target, exp.Schema):
        names = [i.name for i in target.expressions]
        target = target.this
    if not isinstance(target, exp.Table):
        raise Unsupported("INSERT into this target")
    db, table = resolve_table(target, ctx)
    values = node.expression
    if not isinstance(values, exp.Values):
        raise Unsupported("INSERT ... SELECT")
    if names is None:
        cols = list(table.columns)
    else:
        cols = []
        for n in names:
            col = table.column(n)
            if col is None:
                raise Refusal(1054, "42S22", f"Unknown column '{n}' in 'field list'")
            if col in cols:
                raise Refusal(1110, "42000", f"Column '{col.name}' specified twice")
            cols.append(col)
    given = {c.id for c in cols}
    omitted = [c for c in table.columns if c.id not in given and c.encrypted]
    backend_cols = [n for c in cols + omitted for n in c.backend_columns()]
    rows: list[Segment] = []
    for r, row in enumerate(values.expressions):
        items = row.expressions if isinstance(row, exp.Tuple) else None
        if items is None or len(items) != len(cols):
            raise Refusal(1136, "21S01", f"Column count doesn't match value count at row {r + 1}")
        rows.append(", (" if r else "(")
        parts: list[list[Segment]] = []
        for col, e in zip(cols, items, strict=True):
            parts.append(_value(ctx, (db.id, table.id, col), col, e, (r, col.id)))
        for col in omitted:
            parts.append(default_values((db.id, table.id, col), col, (r, col.id)))
        first = True
        for p in parts:
            for seg in p:
                if not first:
                    rows.append(", ")
                rows.append(seg)
                first = False
        rows.append(")")
    replace = node.args.get("alternative")
    if replace not in (None, "REPLACE") or (replace and node.args.get("conflict")):
        raise Unsupported("this form of INSERT / REPLACE")
    verb = "REPLACE" if replace else "INSERT IGNORE" if node.args.get("ignore") else "INSERT"
    head = (
        f"{verb} INTO "
        f"{backend_table(db, table, ctx)} "
        f"({', '.join(quote_ident(n) for n in backend_cols)}) VALUES "
    )
    conflict = node.args.get("conflict")
    if conflict is not None:
        # Imported here: upsert builds on update, which builds on this module.
        from proxy.rewrite.upsert import on_duplicate

        rows += on_duplicate(conflict, ctx, db, table)
    template = Template(segments=[head, *rows])
    ret = node.args.get("returning")
    if ret is not None:
        from proxy.rewrite.returning import returning

        tail, template.decoder = returning(ret, target.alias_or_name, ctx, db, table)
        template.segments = [*template.segments, *tail]  # type: ignore[misc]
    return template


def _value(ctx: Ctx, ref: ColRef, col: Column, e: exp.Expression, iv_key: object) -> list[Segment]:
    if is_default(e):
        if col.plain:
            return ["DEFAULT"]
        return default_values(ref, col, iv_key)
    if is_null(e):
        if col.plain:
            return ["NULL"]
        return null_values(col, iv_key)
    if col.plain and isinstance(e, exp.HexString | exp.BitString):
        return [e.sql("mysql")]  # x'..' / b'..': the server reads them as it would directly
    c = constant(e, ctx)
    if c is None:
        raise Unsupported(f"a value for column {col.name} that is not a constant")
    if col.plain:
        return [RawLit(c[0], c[1])]
    return onion_values(ref, col, iv_key, index=c[0], negate=c[1], store=True)
