"""DDL: CREATE TABLE (anonymized, onion columns), DROP TABLE, TRUNCATE, DROP DATABASE.
FOREIGN KEYs between plain columns: proxy.rewrite.foreign.

Keys: PRIMARY KEY / UNIQUE on an encrypted column are declared on its Eq onion, which
therefore starts at DET (random RND ciphertexts cannot enforce uniqueness); a policy of
min=RND on such a column is refused. Every index also gets an index on the first column's
Ord onion when it has one, so range scans stay indexed once that onion is peeled to OPE.
AUTO_INCREMENT columns are kept plain (documented in proxy.schema).

Example:
    >>> # CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, k INT) becomes
    >>> # CREATE TABLE `t_1` (`c2` INT NOT NULL AUTO_INCREMENT, `c3_eq` BINARY(16),
    >>> #   `c3_ord` BINARY(16), `c3_add` VARBINARY(512), `c3_iv` BINARY(16) NOT NULL,
    >>> #   PRIMARY KEY (`c2`))
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from onion import PaillierPrivateKey
from proxy.rewrite.columns import backend_decls, column_from_def, index_part
from proxy.rewrite.errors import PolicyRefusal, TableExists, Unsupported
from proxy.rewrite.foreign import add_foreign_key, backend_decl, is_foreign_key, superseded
from proxy.rewrite.plan import Template, quote_ident
from proxy.rewrite.resolve import Ctx, backend_table, resolve_table
from proxy.schema import Column, Index, Table, table_to_json

PAILLIER_WIDTH = 512  # bytes of a ciphertext under a 2048-bit n
_TABLE_OPTIONS = (
    exp.EngineProperty,
    exp.CharacterSetProperty,
    exp.CollateProperty,
    exp.AutoIncrementProperty,
)


def create_table(node: exp.Create, *, ctx: Ctx) -> Template:
    schema_node = node.this
    if not isinstance(schema_node, exp.Schema) or node.args.get("expression") is not None:
        raise Unsupported("CREATE TABLE ... LIKE / AS SELECT")
    if node.args.get("replace"):
        raise Unsupported("CREATE OR REPLACE TABLE")
    tnode = schema_node.this
    if not isinstance(tnode, exp.Table):
        raise Unsupported("this CREATE TABLE")
    db_arg = tnode.args.get("db")
    database = db_arg.name if db_arg is not None else ctx.database
    if database is None:
        from proxy.rewrite.errors import Refusal

        raise Refusal(1046, "3D000", "No database selected")
    if ctx.schema.table(database, tnode.name) is not None:
        if node.args.get("exists"):
            return Template(segments=None)  # IF NOT EXISTS: nothing to do
        raise TableExists(tnode.name)
    options = _options(node)
    next_id = ctx.schema.next_id
    db = ctx.schema.database(database)
    db_id = db.id if db is not None else next_id
    next_id += db is None
    table = Table(id=next_id, name=tnode.name, engine=options.get("engine"))
    next_id += 1
    inline: list[tuple[Column, list[str]]] = []
    groups: dict[str, int] = {}
    for item in schema_node.expressions:
        if not isinstance(item, exp.ColumnDef):
            continue
        col, policy, keys = column_from_def(item, next_id)
        next_id += 1
        if table.column(col.name) is not None:
            raise Unsupported(f"duplicate column name {col.name}")
        if policy.join is not None:
            gid = ctx.schema.join_groups.get(policy.join) or groups.get(policy.join)
            if gid is None:
                gid = groups[policy.join] = next_id
                next_id += 1
            col.join_group = gid
        table.columns.append(col)
        inline.append((col, keys))
    if not table.columns:
        raise Unsupported("a table without columns")
    for col, keys in inline:
        for k in keys:
            _add_index(table, [col], primary=k == "primary", unique=True)
    for item in schema_node.expressions:
        if not isinstance(item, exp.ColumnDef) and not is_foreign_key(item):
            _table_constraint(table, item)
    for item in schema_node.expressions:  # after the keys: an index of theirs may serve one
        if is_foreign_key(item):
            _, cols, index_name = add_foreign_key(table, item, database, ctx, next_id)
            next_id += 1
            if cols is not None:
                _add_index(table, cols, name=index_name)
                new = table.indexes[-1]
                new.auto = True
                for ix in superseded(table, new.columns, new):
                    table.indexes.remove(ix)
    paillier = None
    if any("add" in c.onions for c in table.columns) and not ctx.schema.paillier:
        paillier = PaillierPrivateKey.generate().to_bytes().hex()
    sql = _backend_create(table, options, database, ctx)
    op: dict[str, Any] = {
        "op": "add_table",
        "database": database,
        "database_id": db_id,
        "table": table_to_json(table),
        "join_groups": groups,
        "next_id": next_id,
    }
    if paillier:
        op["paillier"] = paillier
    return Template(segments=[sql], ops=[op])


def _options(node: exp.Create) -> dict[str, str]:
    out: dict[str, str] = {}
    props = node.args.get("properties")
    for p in props.expressions if props is not None else []:
        if not isinstance(p, _TABLE_OPTIONS):
            raise Unsupported(f"table option {type(p).__name__}")
        if isinstance(p, exp.EngineProperty):
            out["engine"] = p.this.name
        elif isinstance(p, exp.CharacterSetProperty):
            out["charset"] = p.this.name
        elif isinstance(p, exp.CollateProperty):
            out["collate"] = p.this.name
        else:
            out["auto_increment"] = str(int(p.this.name))
    return out


def _columns_of(table: Table, nodes: list[exp.Expression]) -> list[Column]:
    cols = []
    for n in nodes:
        if isinstance(n, exp.Ordered):
            n = n.this
        if not isinstance(n, exp.Identifier | exp.Column):
            raise Unsupported("index parts other than whole columns")
        col = table.column(n.name)
        if col is None:
            from proxy.rewrite.errors import Refusal

            raise Refusal(1072, "42000", f"Key column '{n.name}' doesn't exist in table")
        cols.append(col)
    return cols


def _table_constraint(table: Table, item: exp.Expression) -> None:
    if isinstance(item, exp.PrimaryKey):
        _add_index(table, _columns_of(table, item.expressions), primary=True, unique=True)
    elif isinstance(item, exp.UniqueColumnConstraint) and isinstance(item.this, exp.Schema):
        name = item.this.this.name if item.this.this is not None else None
        _add_index(table, _columns_of(table, item.this.expressions), unique=True, name=name)
    elif isinstance(item, exp.IndexColumnConstraint) and not item.args.get("kind"):
        name = item.this.name if item.this is not None else None
        _add_index(table, _columns_of(table, item.expressions), name=name)
    else:
        raise Unsupported(f"table constraint {type(item).__name__}")


def _add_index(
    table: Table,
    cols: list[Column],
    *,
    primary: bool = False,
    unique: bool = False,
    name: str | None = None,
) -> None:
    if primary and any(i.primary for i in table.indexes):
        from proxy.rewrite.errors import Refusal

        raise Refusal(1068, "42000", "Multiple primary key defined")
    for col in cols:
        if primary:
            col.nullable = False
        if col.plain or not unique:
            continue
        if "eq" not in col.onions:
            raise PolicyRefusal(
                table.name, col.name, "a unique key", f"onions={','.join(col.onions)}"
            )
        if not col.allows("eq", "det"):
            raise PolicyRefusal(table.name, col.name, "a unique key", f"min={col.min_level}")
        col.onions["eq"] = "det"
    taken = {i.name.lower() for i in table.indexes}
    if primary:
        name = "PRIMARY"
    elif name is None:  # MariaDB's default: the first column's name, then _2, _3 ...
        name, n = cols[0].name, 2
        while name.lower() in taken:
            name, n = f"{cols[0].name}_{n}", n + 1
    elif name.lower() in taken:
        from proxy.rewrite.errors import Refusal

        raise Refusal(1061, "42000", f"Duplicate key name '{name}'")
    table.indexes.append(Index(name, [c.id for c in cols], unique=unique, primary=primary))


def index_decls(table: Table, idx: Index, prefix: str) -> list[str]:
    """Backend index declarations serving one plaintext index (names recorded in
    idx.backend): the main one on Eq onions / plain columns, plus one on the first column's
    Ord onion when it has one."""
    cols = [table.column_by_id(i) for i in idx.columns]
    parts = ", ".join(
        index_part(
            c,
            None if c.plain else "eq" if "eq" in c.onions else next(iter(c.onions)),
            PAILLIER_WIDTH,
        )
        for c in cols
    )
    idx.backend = []
    out = []
    if idx.primary:
        out.append(f"PRIMARY KEY ({parts})")
    else:
        idx.backend.append(f"{prefix}")
        out.append(f"{'UNIQUE ' if idx.unique else ''}KEY `{prefix}` ({parts})")
    first = cols[0]
    if (
        not first.plain
        and "ord" in first.onions
        and not (len(cols) == 1 and "eq" not in first.onions)
    ):
        idx.backend.append(f"{prefix}o")
        out.append(f"KEY `{prefix}o` ({index_part(first, 'ord', PAILLIER_WIDTH)})")
    return out


def _backend_create(table: Table, options: dict[str, str], database: str, ctx: Ctx) -> str:
    decls = [d for c in table.columns for d in backend_decls(c, PAILLIER_WIDTH)]
    for n, idx in enumerate(table.indexes, start=1):
        decls += index_decls(table, idx, f"i{n}")
    decls += [backend_decl(table, fk, database, ctx) for fk in table.foreign_keys]
    name = quote_ident(table.backend_name)
    if database != ctx.database:
        name = f"{quote_ident(database)}.{name}"
    sql = f"CREATE TABLE {name} ({', '.join(decls)})"
    if "engine" in options:
        sql += f" ENGINE={options['engine']}"
    if "charset" in options:
        sql += f" DEFAULT CHARSET={options['charset']}"
    if "collate" in options:
        sql += f" COLLATE={options['collate']}"
    if "auto_increment" in options:
        sql += f" AUTO_INCREMENT={options['auto_increment']}"
    return sql


def drop_table(node: exp.Drop, *, ctx: Ctx) -> Template:
    if node.args.get("temporary") or node.args.get("cascade"):
        raise Unsupported("DROP TEMPORARY TABLE / CASCADE")
    names, ops = [], []
    for t in node.args.get("tables") or [node.this]:
        db_arg = t.args.get("db")
        database = db_arg.name if db_arg is not None else ctx.database
        table = ctx.schema.table(database, t.name)
        if table is None:
            plain = quote_ident(t.name)
            names.append(plain if db_arg is None else f"{quote_ident(db_arg.name)}.{plain}")
            continue
        db, table = resolve_table(t, ctx)
        names.append(backend_table(db, table, ctx))
        ops.append({"op": "drop_table", "database": db.name, "table": table.name})
    exists = " IF EXISTS" if node.args.get("exists") else ""
    return Template(segments=[f"DROP TABLE{exists} {', '.join(names)}"], ops=ops)


def truncate(node: exp.TruncateTable, *, ctx: Ctx) -> Template:
    if node.args.get("is_database"):
        raise Unsupported("TRUNCATE DATABASE")
    names = []
    for t in node.expressions:
        db, table = resolve_table(t, ctx)
        names.append(backend_table(db, table, ctx))
    return Template(segments=[f"TRUNCATE TABLE {', '.join(names)}"])


def dropped_database(node: exp.Drop) -> str:
    """The database a DROP DATABASE names (sqlglot 30 keeps it in `tables`)."""
    target = node.this if node.this is not None else (node.args.get("tables") or [None])[0]
    if target is None:
        raise Unsupported("this DROP DATABASE")
    return target.name


def drop_database(node: exp.Drop, *, ctx: Ctx) -> Template:
    name = dropped_database(node)
    exists = " IF EXISTS" if node.args.get("exists") else ""
    return Template(
        segments=[f"DROP DATABASE{exists} {quote_ident(name)}"],
        ops=[{"op": "drop_database", "database": name}],
    )
