"""INSERT / REPLACE ... RETURNING (MariaDB 10.5+; what SQLAlchemy 2 sends to learn the ids of
the rows it inserts).

The RETURNING list is read like a select list over the inserted table: the backend returns
each named column's onion (and IV) for the rows it wrote, and the decoder decrypts them.
Columns and `*` only; an expression would have to be computed on the server.
"""

from __future__ import annotations

from sqlglot import exp

from proxy.rewrite.decode import DecoderSpec, ReaderSpec, column_out
from proxy.rewrite.errors import Unsupported
from proxy.rewrite.plan import Segment
from proxy.rewrite.resolve import Ctx, Scope, Source
from proxy.schema import Column, Database, Table


def returning(
    node: exp.Returning, alias: str, ctx: Ctx, db: Database, table: Table
) -> tuple[list[Segment], DecoderSpec]:
    """The backend's RETURNING clause and the decoder of the client's result."""
    from proxy.rewrite.select import _Out, _select_list, column_reader

    if node.args.get("into"):
        raise Unsupported("RETURNING ... INTO")
    src = Source(alias, db, table)
    scope = Scope([src])
    out = _Out()
    readers: list[ReaderSpec] = []
    for e in node.expressions:
        name = None
        if isinstance(e, exp.Alias):
            name, e = e.alias, e.this
        cols: list[tuple[Column, str]]
        if isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star)):
            if isinstance(e, exp.Column) and e.table and e.table != alias:
                raise Unsupported(f"unknown table {e.table} in RETURNING")
            cols = [(c, c.name) for c in table.columns]
        elif isinstance(e, exp.Column):
            _, col = scope.column(e, "returning")
            cols = [(col, name or e.name)]
        else:
            raise Unsupported("RETURNING of anything but columns")
        for col, shown in cols:
            readers.append(column_reader(ctx, out, src, col, False))
            out.columns.append(column_out(col, shown, alias, table))
    return [" RETURNING ", *_select_list(out)], DecoderSpec(out.columns, readers, database=db.name)
