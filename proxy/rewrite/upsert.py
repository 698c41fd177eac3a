"""INSERT ... ON DUPLICATE KEY UPDATE: the update part of an upsert, on the onions.

    c = VALUES(c)            every onion and the IV of c copied from the row the INSERT
                             would have written (each row's onions agree with its own IV)
    c = constant / NULL      every onion under a fresh IV, as UPDATE SET c = constant
    p = VALUES(q), p = p + k plain columns, as written

Duplicates are found by the server on the unique indexes, which for encrypted columns are on
the Eq onion at DET: binary equality, as for UNIQUE itself (docs/rewrite.md). Other values
(expressions over encrypted columns, VALUES of another encrypted column, whose keys differ)
are refused.
"""

from __future__ import annotations

from sqlglot import exp

from proxy.rewrite.errors import Unsupported
from proxy.rewrite.plan import Segment
from proxy.rewrite.resolve import Ctx, Scope, Source
from proxy.rewrite.update import _assign, _encrypted_value, _plain_set
from proxy.schema import Column, Database, Table


def on_duplicate(conflict: exp.OnConflict, ctx: Ctx, db: Database, table: Table) -> list[Segment]:
    if not conflict.args.get("duplicate") or conflict.args.get("conflict_keys"):
        raise Unsupported("this ON CONFLICT clause")
    src = Source(table.name, db, table)
    scope = Scope([src])
    sets: list[Segment] = [" ON DUPLICATE KEY UPDATE "]
    for i, a in enumerate(conflict.expressions):
        if not isinstance(a, exp.EQ) or not isinstance(a.this, exp.Column):
            raise Unsupported("this ON DUPLICATE KEY UPDATE clause")
        _, col = scope.column(a.this, "field list")
        value = a.expression
        if i:
            sets.append(", ")
        source = _values_of(value, scope)
        if source is not None:
            if col.plain != source.plain or (not col.plain and source.id != col.id):
                raise Unsupported(
                    f"ON DUPLICATE KEY UPDATE {col.name} = VALUES({source.name}): "
                    "values move between encrypted columns only to themselves"
                )
            names = [col.plain_name] if col.plain else col.backend_columns()
            froms = [source.plain_name] if col.plain else names
            pairs = zip(names, froms, strict=True)
            sets.append(", ".join(f"{src.col(n)} = VALUES({src.col(f)})" for n, f in pairs))
        elif col.plain:
            sets += _plain_set(value, col, src, scope, ctx)
        else:
            ref = src.ref(col)
            sets += _assign(_encrypted_value(value, ref, col, ("dup", col.id), ctx), col, src)
    return sets


def _values_of(value: exp.Expression, scope: Scope) -> Column | None:
    """The column of VALUES(c) / VALUE(c), else None."""
    if not isinstance(value, exp.Anonymous) or value.name.upper() not in ("VALUES", "VALUE"):
        return None
    args = value.expressions
    if len(args) != 1 or not isinstance(args[0], exp.Identifier | exp.Column):
        raise Unsupported("VALUES() of anything but a column")
    name = args[0].name
    return scope.column(exp.column(name), "field list")[1]
