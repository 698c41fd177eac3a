"""ALTER TABLE (ADD / DROP COLUMN, ADD / DROP FOREIGN KEY, RENAME TO), CREATE [UNIQUE]
INDEX, DROP INDEX.

Each plan carries one `replace_table` op: the table's new state, computed here. Existing rows
of an added encrypted column get its DEFAULT (or MariaDB's implicit one for NOT NULL: 0 or
''), encrypted once: every existing row holds the same ciphertext under the same IV, which
tells the server only what it knows anyway (they were all filled by this statement). RENAME
changes the plaintext name only: the backend name and every key stay.

Example:
    >>> # ALTER TABLE r ADD COLUMN z INT becomes
    >>> # ALTER TABLE `t_1` ADD COLUMN `c9_eq` BINARY(16) DEFAULT NULL, ADD COLUMN ...,
    >>> #   ADD COLUMN `c9_iv` BINARY(16) NOT NULL DEFAULT X'<iv>'
"""

from __future__ import annotations

import copy
from typing import Any

from sqlglot import exp

from onion import PaillierPrivateKey
from proxy.rewrite import foreign
from proxy.rewrite.columns import backend_decls, column_from_def, onion_type
from proxy.rewrite.ddl import PAILLIER_WIDTH, _add_index, _columns_of, index_decls
from proxy.rewrite.errors import Refusal, TableExists, Unsupported
from proxy.rewrite.insert import default_values, only
from proxy.rewrite.plan import IvSlot, Segment, Template, quote_ident
from proxy.rewrite.resolve import Ctx, Source, backend_table, need, resolve_table
from proxy.schema import Column, Database, Index, Table, table_to_json

_IMPLICIT = {"int": "0", "uint": "0", "decimal": "0", "string": ""}


def _op(db: Database, old: str, table: Table, next_id: int, **extra: Any) -> dict[str, Any]:
    return {
        "op": "replace_table",
        "database": db.name,
        "old": old,
        "table": table_to_json(table),
        "next_id": next_id,
        **extra,
    }


def alter_table(node: exp.Alter, *, ctx: Ctx) -> Template:
    only(node, {"this", "kind", "actions"}, "ALTER TABLE")
    if str(node.args.get("kind") or "").upper() != "TABLE":
        raise Unsupported(f"ALTER {node.args.get('kind')}")
    db, old = resolve_table(node.this, ctx)
    table = copy.deepcopy(old)
    next_id = ctx.schema.next_id
    extra: dict[str, Any] = {"join_groups": {}}
    parts: list[list[Segment]] = []
    for action in node.args.get("actions") or []:
        if isinstance(action, exp.ColumnDef):
            col, policy, keys = column_from_def(action, next_id)
            next_id += 1
            if keys or table.column(col.name) is not None:
                raise Unsupported("ADD COLUMN with a key, or of an existing name")
            if policy.join is not None:
                gid = ctx.schema.join_groups.get(policy.join) or extra["join_groups"].get(
                    policy.join
                )
                if gid is None:
                    gid = extra["join_groups"][policy.join] = next_id
                    next_id += 1
                col.join_group = gid
            if "add" in col.onions and not ctx.schema.paillier:
                extra["paillier"] = PaillierPrivateKey.generate().to_bytes().hex()
            table.columns.append(col)
            parts.append(_add_column(ctx, db, table, col))
        elif isinstance(action, exp.Drop) and str(action.args.get("kind")).upper() == "COLUMN":
            for c in action.args.get("tables") or []:
                parts.append(_drop_column(table, c.name))
        elif isinstance(action, exp.AddConstraint) and all(
            foreign.is_foreign_key(e) for e in action.expressions
        ):
            for e in action.expressions:
                parts.append(_add_foreign_key(ctx, db, table, e, next_id))
                next_id += 1
        elif isinstance(action, exp.Drop) and str(action.args.get("kind")).upper() == "FOREIGN KEY":
            for t in action.args.get("tables") or []:
                parts.append([foreign.drop_foreign_key(table, t.name)])
        elif isinstance(action, exp.AlterRename):
            new = action.this.name
            if ctx.schema.table(db.name, new) is not None:
                raise TableExists(new)
            table.name = new
        else:
            raise Unsupported(f"ALTER TABLE ... {type(action).__name__}")
    op = _op(db, old.name, table, next_id, **extra)
    if not parts:
        return Template(segments=None, ops=[op])  # RENAME only: nothing changes on the server
    sql: list[Segment] = [f"ALTER TABLE {backend_table(db, old, ctx)} "]
    for i, p in enumerate(parts):
        sql += ([", "] if i else []) + p
    return Template(segments=sql, ops=[op])


def _add_column(ctx: Ctx, db: Database, table: Table, col: Column) -> list[Segment]:
    if col.plain:
        return [f"ADD COLUMN {backend_decls(col, PAILLIER_WIDTH)[0]}"]
    if not col.has_default and not col.nullable:
        implicit = _IMPLICIT.get(col.kind)
        if implicit is None:
            raise Unsupported(f"ADD COLUMN {col.name} NOT NULL without a DEFAULT")
        fill = copy.deepcopy(col)
        fill.has_default, fill.default = True, [implicit, col.kind == "string", False]
    else:
        fill = col
    values = default_values((db.id, table.id, fill), fill, ("add", col.id))
    nn = "" if col.nullable else " NOT NULL"
    out: list[Segment] = []
    names = col.backend_columns()
    for name, value in zip(names, values, strict=True):
        typ = (
            "BINARY(16) NOT NULL"
            if name == col.iv_name
            else onion_type(col, name.rsplit("_", 1)[1], PAILLIER_WIDTH) + nn
        )
        out += [("" if not out else ", ") + f"ADD COLUMN {quote_ident(name)} {typ} DEFAULT ", value]
    if col.has_iv and not isinstance(values[-1], IvSlot):
        raise AssertionError("the IV comes last")
    return out


def _add_foreign_key(
    ctx: Ctx, db: Database, table: Table, item: exp.Expression, uid: int
) -> list[Segment]:
    fk, cols, index_name = foreign.add_foreign_key(table, item, db.name, ctx, uid)
    decls = []
    if cols is not None:  # InnoDB would add it unseen: the proxy's schema must know it
        _add_index(table, cols, name=index_name)
        new = table.indexes[-1]
        new.auto = True
        decls = [f"ADD {d}" for d in index_decls(table, new, f"x{uid}")]
        decls += _drop_superseded(table, new)
    decls.append(f"ADD {foreign.backend_decl(table, fk, db.name, ctx)}")
    return [", ".join(decls)]


def _drop_superseded(table: Table, new: Index) -> list[str]:
    out = []
    for ix in foreign.superseded(table, new.columns, new):
        table.indexes.remove(ix)
        out += [f"DROP INDEX {quote_ident(n)}" for n in ix.backend]
    return out


def _drop_column(table: Table, name: str) -> list[Segment]:
    col = table.column(name)
    if col is None:
        raise Refusal(1091, "42000", f"Can't DROP COLUMN `{name}`; check that it exists")
    if len(table.columns) == 1:
        raise Refusal(1090, "42000", "You can't delete all columns with ALTER TABLE")
    table.columns.remove(col)
    for idx in table.indexes:
        if col.id in idx.columns:
            raise Unsupported(f"DROP COLUMN {name}: drop index {idx.name} first")
    fk = foreign.referencing(table, col)
    if fk is not None:
        raise Unsupported(f"DROP COLUMN {name}: drop foreign key {fk.name} first")
    return [", ".join(f"DROP COLUMN {quote_ident(n)}" for n in col.backend_columns())]


def create_index(node: exp.Create, *, ctx: Ctx) -> Template:
    index = node.this
    if not isinstance(index, exp.Index) or node.args.get("replace") or node.args.get("exists"):
        raise Unsupported("this CREATE INDEX")
    params = index.args.get("params")
    db, old = resolve_table(index.args["table"], ctx)
    table = copy.deepcopy(old)
    cols = _columns_of(table, list(params.args.get("columns") or []))
    unique = bool(node.args.get("unique"))
    src = Source(old.name, db, old)
    if unique:  # uniqueness is enforced on DET: peel first where needed
        for c in cols:
            if not c.plain:
                need(ctx, src, old.column_by_id(c.id), "grouping")
                table.column_by_id(c.id).onions["eq"] = "det"
    _add_index(table, cols, unique=unique, name=index.name)
    idx = table.indexes[-1]
    prefix = f"x{ctx.schema.next_id}"
    # InnoDB drops the index it made for a foreign key once another one serves it.
    clauses = [f"ADD {d}" for d in index_decls(table, idx, prefix)] + _drop_superseded(table, idx)
    sql = f"ALTER TABLE {backend_table(db, old, ctx)} " + ", ".join(clauses)
    return Template(segments=[sql], ops=[_op(db, old.name, table, ctx.schema.next_id + 1)])


def drop_index(node: exp.Drop, *, ctx: Ctx) -> Template:
    on = node.args.get("cluster")
    if not isinstance(on, exp.OnProperty) or len(node.args.get("tables") or []) != 1:
        raise Unsupported("this DROP INDEX")
    db, old = resolve_table(on.this, ctx)
    table = copy.deepcopy(old)
    name = node.args["tables"][0].name
    idx = next((i for i in table.indexes if i.name.lower() == name.lower()), None)
    if idx is None:
        raise Refusal(1091, "42000", f"Can't DROP INDEX `{name}`; check that it exists")
    table.indexes.remove(idx)
    drops = ["DROP PRIMARY KEY"] if idx.primary else []
    drops += [f"DROP INDEX {quote_ident(n)}" for n in idx.backend]
    sql = f"ALTER TABLE {backend_table(db, old, ctx)} {', '.join(drops)}"
    return Template(segments=[sql], ops=[_op(db, old.name, table, ctx.schema.next_id)])
