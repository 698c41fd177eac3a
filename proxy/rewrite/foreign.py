"""FOREIGN KEY constraints (CREATE TABLE, ALTER TABLE ADD / DROP FOREIGN KEY).

The server enforces them, so it must compare the values: a foreign key is accepted only
between plain columns (AUTO_INCREMENT keys are plain; a referencing column is declared
`COMMENT 'cryptdb: plain'`, which the leakage report lists). On an encrypted column it is
refused rather than dropped silently or enforced on ciphertexts the server cannot compare.

Names follow MariaDB: the CONSTRAINT symbol, else the FOREIGN KEY's index name, else
`<table>_ibfk_<n>`; when no index starts with the referencing columns one is added, named
like the constraint (default: the first column's name), as InnoDB does. The backend
constraint is `f<id>`, a schema id of its own (constraint names are per database).

Example:
    >>> # CREATE TABLE o (..., cid INT COMMENT 'cryptdb: plain',
    >>> #   FOREIGN KEY (cid) REFERENCES customer (id) ON DELETE CASCADE) adds to t_7
    >>> # CONSTRAINT `f12` FOREIGN KEY (`c9`) REFERENCES `db`.`t_3` (`c4`)
    >>> #   ON DELETE CASCADE ON UPDATE RESTRICT
"""

from __future__ import annotations

import re

from sqlglot import exp

from proxy.rewrite.errors import Refusal, Unsupported
from proxy.rewrite.plan import quote_ident
from proxy.rewrite.resolve import Ctx
from proxy.schema import Column, ForeignKey, Index, Table

ACTIONS = ("RESTRICT", "CASCADE", "SET NULL", "NO ACTION", "SET DEFAULT")
_OPTION = re.compile(r"ON (DELETE|UPDATE) (" + "|".join(ACTIONS) + ")")


def is_foreign_key(item: exp.Expression) -> bool:
    if isinstance(item, exp.Constraint):
        return len(item.expressions) == 1 and isinstance(item.expressions[0], exp.ForeignKey)
    return isinstance(item, exp.ForeignKey)


def add_foreign_key(
    table: Table, item: exp.Expression, database: str, ctx: Ctx, uid: int
) -> tuple[ForeignKey, list[Column] | None, str | None]:
    """Record the constraint on `table` (its new state); returns it, and the columns and
    name of the index to add for it (None: an index already starts with its columns).
    `uid`: a schema id of its own (the backend constraint is `f<uid>`)."""
    symbol = None
    if isinstance(item, exp.Constraint):
        symbol = item.this.name
        item = item.expressions[0]
    assert isinstance(item, exp.ForeignKey)
    index_name = item.this.name if isinstance(item.this, exp.Identifier) else None
    cols = [_child_column(table, n) for n in item.expressions]
    ref = item.args.get("reference")
    if not isinstance(ref, exp.Reference) or not isinstance(ref.this, exp.Schema):
        raise Unsupported("this FOREIGN KEY")
    target = ref.this.this
    ref_cols = [e.name for e in ref.this.expressions]
    if not isinstance(target, exp.Table) or not ref_cols or len(ref_cols) != len(cols):
        raise Refusal(1239, "42000", "Incorrect foreign key definition: column counts differ")
    ref_db = target.args["db"].name if target.args.get("db") is not None else database
    parent = table if (ref_db, target.name) == (database, table.name) else None
    parent = parent or ctx.schema.table(ref_db, target.name)
    if parent is None:
        # Its names would go to the server as written: a table created later through the
        # proxy (a dump's forward reference) would have them on record there.
        raise Unsupported(
            f"a foreign key referencing {target.name}, a table the proxy did not create"
        )
    ref_cols = [_plain_column(parent, n, "referencing").name for n in ref_cols]
    actions = {"DELETE": "RESTRICT", "UPDATE": "RESTRICT"}
    for option in ref.args.get("options") or []:
        m = _OPTION.fullmatch(" ".join(str(option).upper().split()))
        if m is None:
            raise Unsupported(f"FOREIGN KEY option {option}")
        actions[m.group(1)] = m.group(2)
    name = symbol or index_name or _auto_name(table)
    taken = {fk.name.lower() for t in _tables(ctx, database, table) for fk in t.foreign_keys}
    if name.lower() in taken:
        raise Refusal(1826, "HY000", f"Duplicate FOREIGN KEY constraint name '{name}'")
    fk = ForeignKey(
        name=name,
        columns=[c.id for c in cols],
        ref_database=ref_db,
        ref_table=parent.name,
        ref_columns=ref_cols,
        on_delete=actions["DELETE"],
        on_update=actions["UPDATE"],
        backend=f"f{uid}",
    )
    table.foreign_keys.append(fk)
    ids = [c.id for c in cols]
    serving = [ix for ix in table.indexes if ix.columns[: len(ids)] == ids]
    if any(not ix.auto for ix in serving):
        return fk, None, None
    return fk, cols, symbol or index_name


def superseded(table: Table, ids: list[int], keep: Index) -> list[Index]:
    """The indexes InnoDB made for foreign keys that the index `keep` (on `ids`) now serves:
    MariaDB drops them (a new foreign key's own index replaces the older one's)."""
    return [
        ix
        for ix in table.indexes
        if ix.auto and ix is not keep and ids[: len(ix.columns)] == ix.columns
    ]


def backend_decl(table: Table, fk: ForeignKey, database: str, ctx: Ctx) -> str:
    """The constraint as the backend declares it (backend names only)."""
    cols = ", ".join(quote_ident(table.column_by_id(c).plain_name) for c in fk.columns)
    parent = (
        table
        if (fk.ref_database, fk.ref_table) == (database, table.name)
        else ctx.schema.table(fk.ref_database, fk.ref_table)
    )
    assert parent is not None  # add_foreign_key accepts the proxy's tables only
    ref_name = parent.backend_name
    ref_cols = [parent.column(n).plain_name for n in fk.ref_columns]  # type: ignore[union-attr]
    return (
        f"CONSTRAINT {quote_ident(fk.backend)} FOREIGN KEY ({cols}) REFERENCES "
        f"{quote_ident(fk.ref_database)}.{quote_ident(ref_name)} "
        f"({', '.join(quote_ident(c) for c in ref_cols)}) "
        f"ON DELETE {fk.on_delete} ON UPDATE {fk.on_update}"
    )


def shown_lines(table: Table, database: str) -> list[str]:
    """SHOW CREATE TABLE's CONSTRAINT lines: MariaDB lists them by name."""
    fks = sorted(table.foreign_keys, key=lambda f: f.name)
    return [shown(table, fk, database) for fk in fks]


def shown(table: Table, fk: ForeignKey, database: str) -> str:
    """The constraint's line in SHOW CREATE TABLE, as MariaDB writes it."""
    cols = ", ".join(quote_ident(table.column_by_id(c).name) for c in fk.columns)
    ref = quote_ident(fk.ref_table)
    if fk.ref_database != database:
        ref = f"{quote_ident(fk.ref_database)}.{ref}"
    line = (
        f"  CONSTRAINT {quote_ident(fk.name)} FOREIGN KEY ({cols}) REFERENCES {ref} "
        f"({', '.join(quote_ident(c) for c in fk.ref_columns)})"
    )
    if fk.on_delete != "RESTRICT":
        line += f" ON DELETE {fk.on_delete}"
    if fk.on_update != "RESTRICT":
        line += f" ON UPDATE {fk.on_update}"
    return line


def drop_foreign_key(table: Table, name: str) -> str:
    """Remove the constraint from `table`; the backend's DROP clause. Its index stays, as
    MariaDB leaves it."""
    fk = next((f for f in table.foreign_keys if f.name.lower() == name.lower()), None)
    if fk is None:
        raise Refusal(1091, "42000", f"Can't DROP FOREIGN KEY `{name}`; check that it exists")
    table.foreign_keys.remove(fk)
    return f"DROP FOREIGN KEY {quote_ident(fk.backend)}"


def referencing(table: Table, col: Column) -> ForeignKey | None:
    return next((fk for fk in table.foreign_keys if col.id in fk.columns), None)


def _child_column(table: Table, node: exp.Expression) -> Column:
    return _plain_column(table, node.name, "on")


def _plain_column(table: Table, name: str, how: str) -> Column:
    col = table.column(name)
    if col is None:
        raise Refusal(1072, "42000", f"Key column '{name}' doesn't exist in table")
    if not col.plain:
        raise Unsupported(
            f"a foreign key {how} encrypted column {table.name}.{col.name} (the server can "
            "only enforce one between plain columns: declare it COMMENT 'cryptdb: plain', "
            "and the server sees its values)"
        )
    return col


def _auto_name(table: Table) -> str:
    prefix = f"{table.name}_ibfk_".lower()
    used = [
        int(fk.name[len(prefix) :])
        for fk in table.foreign_keys
        if fk.name.lower().startswith(prefix) and fk.name[len(prefix) :].isdigit()
    ]
    return f"{table.name}_ibfk_{max(used, default=0) + 1}"


def _tables(ctx: Ctx, database: str, table: Table) -> list[Table]:
    db = ctx.schema.database(database)
    others = [t for t in db.tables.values() if t.id != table.id] if db is not None else []
    return [*others, table]
