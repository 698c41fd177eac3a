"""information_schema queries answered with the plaintext schema, evaluated in the proxy.

ORMs introspect through information_schema (TABLES, COLUMNS, STATISTICS, KEY_COLUMN_USAGE,
TABLE_CONSTRAINTS, ...), where the backend only knows `t_<id>`, onion columns and
`_cryptdb_layers`. Plaintext names must never reach the server, so the query cannot be
rewritten for it: the plan (`Evaluate`) fetches the backend's rows of the information_schema
tables the query reads (plain SQL naming only databases, which keep their names), and
`finish` replaces the rows of the proxy's tables by rows made from the schema (types, keys
and defaults as DESCRIBE / SHOW CREATE TABLE give them, proxy.rewrite.show), then runs the
client's query over those rows (proxy.rewrite.evaluate: sqlglot's Python executor, with
MariaDB's comparisons). What cannot be evaluated is refused (1235): never an answer with
anonymized names. Queries that read no table-listing information_schema table, or only
databases without a proxy table, pass through.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

from sqlglot import exp

from onion.encoding import Kind
from proxy.protocol.codec import ColumnDefinition
from proxy.rewrite.columns import default_sql
from proxy.rewrite.decode import int_digits
from proxy.rewrite.errors import Unsupported
from proxy.rewrite.evaluate import (
    INFORMATION_SCHEMA,
    Row,
    RowsDecoder,
    check_supported,
    convert,
    evaluate,
)
from proxy.rewrite.plan import LAYERS_TABLE, Evaluate, Fetched, PassThrough, quote_ident
from proxy.rewrite.show import (
    column_key,
    display_type,
    like_regex,
    ordered_indexes,
    policy_comment,
)
from proxy.schema import Column, Database, Schema, Table


@dataclass(frozen=True)
class Spec:
    """How one information_schema table names tables: the columns holding a database and a
    table name, and what happens to rows about the proxy's tables (synthesized from the
    schema, renamed, or hidden). `refs`: further (database, table) column pairs whose rows
    are hidden when they name a proxy table (a reference could only show its backend name)."""

    schema_col: str
    table_col: str
    how: str  # "synth" | "rename" | "hide"
    refs: tuple[tuple[str, str], ...] = ()


SPECS: dict[str, Spec] = {
    "columns": Spec("table_schema", "table_name", "synth"),
    "statistics": Spec("table_schema", "table_name", "synth"),
    "key_column_usage": Spec(
        "table_schema",
        "table_name",
        "synth",
        (("referenced_table_schema", "referenced_table_name"),),
    ),
    "table_constraints": Spec("table_schema", "table_name", "synth"),
    "tables": Spec("table_schema", "table_name", "rename"),
    "partitions": Spec("table_schema", "table_name", "rename"),
    "table_privileges": Spec("table_schema", "table_name", "rename"),
    "table_statistics": Spec("table_schema", "table_name", "rename"),
    "views": Spec("table_schema", "table_name", "rename"),
    "referential_constraints": Spec(
        "constraint_schema",
        "table_name",
        "synth",
        (("unique_constraint_schema", "referenced_table_name"),),
    ),
    # The proxy creates neither checks nor triggers on its tables.
    "check_constraints": Spec("constraint_schema", "table_name", "hide"),
    "triggers": Spec("event_object_schema", "event_object_table", "hide"),
}
# MariaDB looks `=` constants on these up in the file system: compared case-sensitively.
LOOKUPS = {(name, col) for name, spec in SPECS.items() for col in (spec.schema_col, spec.table_col)}
# Tables that show backend table or column names in a form not translated here (engine
# internals, column privileges): refused while the deployment has encrypted tables.
REFUSED = {
    "column_privileges",
    "index_statistics",
    "files",
    "innodb_buffer_page",
    "innodb_buffer_page_lru",
    "innodb_cmp_per_index",
    "innodb_cmp_per_index_reset",
    "innodb_locks",
    "innodb_sys_columns",
    "innodb_sys_fields",
    "innodb_sys_foreign",
    "innodb_sys_foreign_cols",
    "innodb_sys_indexes",
    "innodb_sys_tables",
    "innodb_sys_virtual",
    "geometry_columns",
    "metadata_lock_info",
    "innodb_sys_tablespaces",
    "innodb_sys_tablestats",
    "innodb_tablespaces_encryption",
}
_BACKEND_TABLE = re.compile(r"t_\d+")


# ---- planning -------------------------------------------------------------------------------


def plan_infoschema(
    node: exp.Expression,
    sql: str,
    schema: Schema,
    database: str | None,
    executable_comment: bool = False,
) -> Evaluate | PassThrough | None:
    """An Evaluate plan when `node` reads information_schema tables that could show the
    proxy's tables; PassThrough when its constants keep it to other databases; None when it
    does not concern them (the caller goes on as before)."""
    if not any(db.tables for db in schema.databases.values()):
        return None  # no table of the proxy's to show: the cheap test first (every miss)
    refs, others = _table_refs(node, database)
    if not refs:
        return None
    names = {name for name, _ in refs}
    if not names & (SPECS.keys() | REFUSED):
        return None  # PROCESSLIST, SCHEMATA, ENGINES ...: nothing about tables
    refused = sorted(names & REFUSED)
    if refused:
        raise Unsupported(f"information_schema.{refused[0].upper()} (it shows backend names)")
    if not isinstance(node, exp.Query):
        raise Unsupported("statements on information_schema other than queries")
    if others:
        raise Unsupported("information_schema queries that also read other tables")
    if executable_comment:
        raise Unsupported("executable comments (/*! ... */)")
    if node.args.get("into") is not None:
        raise Unsupported("SELECT ... INTO on information_schema")
    check_supported(node)
    wanted = sorted(names & SPECS.keys())
    secret = _secret_names(schema)
    pushed = _pushdown(node, refs, database, secret)
    if (
        all(pushed.get(n) is not None for n in wanted)
        and not any(_has_tables(schema, db) for n in wanted for db in pushed[n] or ())
        # The text goes to the server as it is: none of its strings may be a plaintext
        # name (`table_schema = 'mysql' AND table_name = 'patients'`).
        and not any(
            lit.is_string and lit.this.lower() in secret for lit in node.find_all(exp.Literal)
        )
    ):
        # Only databases the proxy has no table in: the backend answers exactly. A decision
        # made on the constants: the caller must not cache it for the statement's shape.
        return PassThrough()
    fetch = [_fetch_sql(n, pushed.get(n)) for n in wanted]
    finish = partial(_finish, node.copy(), sql, wanted, schema, database)
    return Evaluate(fetch, finish)


def plan_table_status(
    node: exp.Expression, schema: Schema, database: str | None
) -> Evaluate | None:
    """SHOW TABLE STATUS [FROM db] [LIKE 'p'] on a database with proxy tables: TABLES in
    another form. The backend's own statement is fetched (it names the database only), its
    rows renamed, `_cryptdb_layers` hidden, LIKE applied here, sorted by the plaintext name."""
    if not isinstance(node, exp.Show) or str(node.name).upper() != "TABLE STATUS":
        return None
    db = node.args.get("db")
    db_name = (db.name if isinstance(db, exp.Expression) else db) or database
    if db_name is None or not _has_tables(schema, db_name):
        return None
    if node.args.get("where") is not None:
        raise Unsupported("SHOW TABLE STATUS ... WHERE")
    like = node.args.get("like")
    pattern = like.name if isinstance(like, exp.Literal) else None
    fetch = [f"SHOW TABLE STATUS FROM {quote_ident(db_name)}"]
    return Evaluate(fetch, partial(_table_status, schema, db_name, pattern))


def _table_status(
    schema: Schema, db_name: str, pattern: str | None, fetched: Sequence[Fetched]
) -> RowsDecoder:
    [(definitions, rows)] = fetched
    proxied = _Proxied(schema)
    like = like_regex(pattern) if pattern is not None else None
    out = []
    for row in rows:
        values = [convert(d, v) for d, v in zip(definitions, row, strict=True)]
        if proxied.hidden(db_name, values[0]):
            continue
        found = proxied.tables.get((db_name, values[0]))
        if found is not None:
            values[0] = found[1].name
        if like is None or like.fullmatch(values[0]):
            out.append(tuple(values))
    out.sort(key=lambda r: r[0])
    return RowsDecoder(list(definitions), out)


_MENTION = re.compile(
    r"information_schema[`\s]*\.[`\s]*(?:" + "|".join(sorted(SPECS.keys() | REFUSED)) + r")\b",
    re.I,
)


_BARE = re.compile(r"\b(?:" + "|".join(sorted(SPECS.keys() | REFUSED)) + r")\b", re.I)


def mentions_infoschema(schema: Schema, text: str, database: str | None = None) -> bool:
    """Text that could not be parsed but reads an information_schema table listing the
    proxy's tables (qualified, or by its bare name while information_schema is the current
    database): refused (fail closed) rather than answered with backend names."""
    if not any(db.tables for db in schema.databases.values()):
        return False
    bare = database is not None and database.lower() == INFORMATION_SCHEMA
    return (_BARE if bare else _MENTION).search(text) is not None


def _table_refs(
    node: exp.Expression, database: str | None
) -> tuple[list[tuple[str, exp.Table]], list[exp.Table]]:
    """(information_schema table name lowercased, node) pairs, and every other table."""
    refs, others = [], []
    for t in node.find_all(exp.Table):
        if not t.name:
            continue
        db = t.args.get("db")
        db_name = db.name if db is not None else database
        if db_name is not None and db_name.lower() == INFORMATION_SCHEMA:
            refs.append((t.name.lower(), t))
        elif not (db is None and t.name.lower() == "dual"):
            others.append(t)
    return refs, others


def _has_tables(schema: Schema, name: str) -> bool:
    """Case-insensitively: a backend with lower_case_table_names would match either way."""
    low = name.lower()
    return any(db.tables for n, db in schema.databases.items() if n.lower() == low)


def _secret_names(schema: Schema) -> set[str]:
    """Plaintext table and column names, less the database names (the server knows those)."""
    names = {
        n.lower()
        for db in schema.databases.values()
        for t in db.tables.values()
        for n in [t.name, *(c.name for c in t.columns)]
    }
    return names - {db.lower() for db in schema.databases}


def _pushdown(
    node: exp.Expression,
    refs: list[tuple[str, exp.Table]],
    database: str | None,
    secret: set[str],
) -> dict[str, set[str] | None]:
    """Per information_schema table: the databases the query restricts it to, None for all.
    Restrictions are conjuncts of the top-level WHERE (or of a JOIN's ON, for the table it
    joins): `schema_col = 'x'`, `= DATABASE()`, `IN (...)`, and `a.schema_col = b.schema_col`
    carrying b's restriction over to a. A constant that is an encrypted table's or column's
    name is never sent (that table is fetched whole instead)."""
    top: dict[str, str] = {}  # alias (lowercased) -> information_schema table, top level
    scoped: list[tuple[exp.Expression, str | None]] = []  # (conjunct, the alias it restricts)
    if isinstance(node, exp.Select):
        for _, t in refs:
            if t.parent_select is node:
                top[(t.alias or t.name).lower()] = t.name.lower()
        where = node.args.get("where")
        if where is not None:
            scoped += [(c, None) for c in _conjuncts(where.this)]
        for j in node.args.get("joins") or []:
            on, t = j.args.get("on"), j.this
            # A LEFT or inner join's ON only ever drops rows of the table it joins.
            if on is not None and isinstance(t, exp.Table) and j.side not in ("RIGHT", "FULL"):
                scoped += [(c, (t.alias or t.name).lower()) for c in _conjuncts(on)]
    found: dict[str, set[str]] = {}
    links: list[tuple[str, str]] = []  # (a, b): a's rows need b's database
    for c, only in scoped:
        hit = _schema_condition(c, top, database)
        if hit is not None:
            alias, values = hit
            if only in (None, alias) and not any(v.lower() in secret for v in values):
                found[alias] = found[alias] & values if alias in found else values
            continue
        link = _schema_link(c, top)
        if link is not None:
            a, b = link
            links += [(x, y) for x, y in ((a, b), (b, a)) if only in (None, x)]
    for _ in range(len(top)):
        for a, b in links:
            if b in found and (a not in found or not found[a] <= found[b]):
                found[a] = found[a] & found[b] if a in found else set(found[b])
    out: dict[str, set[str] | None] = {}
    for name, t in refs:
        alias = (t.alias or t.name).lower()
        restricted = (
            found.get(alias) if top.get(alias) == name and t.parent_select is node else None
        )
        if name in out and (out[name] is None or restricted is None):
            out[name] = None
        elif name in out:
            out[name] = out[name] | restricted  # type: ignore[operator]
        else:
            out[name] = restricted
    return out


def _conjuncts(e: exp.Expression) -> list[exp.Expression]:
    while isinstance(e, exp.Paren):
        e = e.this
    return [_unparen(c) for c in e.flatten()] if isinstance(e, exp.And) else [e]


def _unparen(e: exp.Expression) -> exp.Expression:
    while isinstance(e, exp.Paren):
        e = e.this
    return e


def _alias_of(col: exp.Column, top: dict[str, str]) -> str | None:
    """The top-level table a schema column reference belongs to (by qualifier, or the only
    table), when the column is that table's database column."""
    alias = col.table.lower() if col.table else (next(iter(top)) if len(top) == 1 else None)
    if alias is None or alias not in top:
        return None
    spec = SPECS.get(top[alias])
    return alias if spec is not None and col.name.lower() == spec.schema_col else None


def _schema_link(c: exp.Expression, top: dict[str, str]) -> tuple[str, str] | None:
    if not (isinstance(c, exp.EQ) and isinstance(c.this, exp.Column)):
        return None
    if not isinstance(c.expression, exp.Column):
        return None
    a, b = _alias_of(c.this, top), _alias_of(c.expression, top)
    return (a, b) if a is not None and b is not None and a != b else None


def _schema_condition(
    c: exp.Expression, top: dict[str, str], database: str | None
) -> tuple[str, set[str]] | None:
    """(alias, databases) for `alias.schema_col = constant` or `IN (constants)`."""
    if isinstance(c, exp.EQ):
        col, other = (
            (c.this, c.expression) if isinstance(c.this, exp.Column) else (c.expression, c.this)
        )
        values = [other]
    elif isinstance(c, exp.In) and not c.args.get("query"):
        col, values = c.this, list(c.expressions)
    else:
        return None
    if not isinstance(col, exp.Column):
        return None
    alias = _alias_of(col, top)
    if alias is None:
        return None
    out = set()
    for v in values:
        if isinstance(v, exp.Literal) and v.is_string:
            out.add(v.this)
        elif isinstance(v, exp.CurrentSchema):
            if database is not None:
                out.add(database)
        else:
            return None
    return alias, out


def _fetch_sql(name: str, databases: set[str] | None) -> str:
    sql = f"SELECT * FROM information_schema.{quote_ident(name.upper())}"
    if databases is not None and not databases:
        sql += " WHERE FALSE"  # e.g. TABLE_SCHEMA = DATABASE() without a database
    elif databases is not None:
        col = quote_ident(SPECS[name].schema_col.upper())
        listed = ", ".join(_quote(d) for d in sorted(databases))
        sql += f" WHERE {col} IN ({listed})"
    return sql


def _quote(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


# ---- rows about the proxy's tables -----------------------------------------------------------


class _Proxied:
    """The proxy's tables by backend (database, table name), and the names to hide."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.tables: dict[tuple[str, str], tuple[Database, Table]] = {}
        self.groups = {gid: name for name, gid in schema.join_groups.items()}
        for db in schema.databases.values():
            for t in db.tables.values():
                self.tables[(db.name, t.backend_name)] = (db, t)
        self.databases = set(schema.databases)

    def hidden(self, db: Any, name: Any) -> bool:
        """The layers table, or a `t_<id>` the schema does not know (never shown)."""
        if db not in self.databases or not isinstance(name, str):
            return False
        return name == LAYERS_TABLE or (
            (db, name) not in self.tables and _BACKEND_TABLE.fullmatch(name) is not None
        )


def translate(name: str, rows: list[Row], proxied: _Proxied) -> list[Row]:
    """The backend's rows of one information_schema table, the proxy's tables shown as the
    client created them."""
    spec = SPECS[name]
    own: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        key = (row.get(spec.schema_col), row.get(spec.table_col))
        if key in proxied.tables:
            own.setdefault(key, []).append(row)  # type: ignore[arg-type]
    out: list[Row] = []
    done: set[tuple[str, str]] = set()
    for row in rows:
        key = (row.get(spec.schema_col), row.get(spec.table_col))
        found = proxied.tables.get(key)  # type: ignore[arg-type]
        if proxied.hidden(*key) or (
            # A plain table's reference to a proxy table could only show its backend name;
            # the proxy's own tables are made from the schema whatever they reference.
            (found is None or spec.how != "synth")
            and any(
                (row.get(s), row.get(t)) in proxied.tables
                or proxied.hidden(row.get(s), row.get(t))
                for s, t in spec.refs
            )
        ):
            continue
        if found is None:
            out.append(row)
        elif spec.how == "rename":
            out.append({**row, spec.table_col: found[1].name})
        elif spec.how == "synth" and key not in done:
            done.add(key)  # type: ignore[arg-type]
            out.extend(SYNTH[name](found[0], found[1], own[key], proxied))  # type: ignore[index]
    return out


def _columns(db: Database, table: Table, backend: list[Row], proxied: _Proxied) -> list[Row]:
    by_name = {r.get("column_name"): r for r in backend}
    base = backend[0]
    out = []
    for pos, c in enumerate(table.columns, start=1):
        row = dict(by_name.get(c.plain_name, base)) if c.plain else dict(base)
        row.update(
            table_name=table.name,
            column_name=c.name,
            ordinal_position=pos,
            column_key=column_key(table, c),
            column_comment=policy_comment(c, proxied.groups),
        )
        if c.encrypted or c.plain_name not in by_name:
            row.update(_column_type(c))
        out.append(row)
    return out


_TEXT_LENGTH = {"tinytext": 255, "text": 65535, "mediumtext": 16777215, "longtext": 4294967295}


def _column_type(c: Column) -> Row:
    """COLUMNS' type fields of an encrypted column, as MariaDB reports the plaintext one."""
    k = c.kind
    column_type = display_type(c)
    row: Row = {
        "data_type": column_type.split("(")[0].split(" ")[0],
        "column_type": column_type,
        "is_nullable": "YES" if c.nullable else "NO",
        "column_default": column_default(c),
        "extra": "auto_increment" if c.auto_increment else "",
        "character_maximum_length": None,
        "character_octet_length": None,
        "numeric_precision": None,
        "numeric_scale": None,
        "datetime_precision": None,
        "character_set_name": None,
        "collation_name": None,
        "is_generated": "NEVER",
        "generation_expression": None,
    }
    if k in (Kind.INT, Kind.UINT):
        row.update(numeric_precision=int_digits(c), numeric_scale=0)
    elif k == Kind.DECIMAL:
        row.update(numeric_precision=c.precision, numeric_scale=c.scale)
    elif k == Kind.DATETIME:
        row.update(datetime_precision=c.fsp)
    elif k == Kind.STRING:
        length = c.length if c.text in ("char", "varchar") else _TEXT_LENGTH[c.text]
        octets = 4 * length if c.text in ("char", "varchar") else length
        collation = c.collation or "utf8mb4_general_ci"
        row.update(
            character_maximum_length=length,
            character_octet_length=octets,
            character_set_name=collation.split("_")[0],
            collation_name=collation,
        )
    return row


def column_default(c: Column) -> str | None:
    """COLUMN_DEFAULT as MariaDB 10.2+ writes it: a literal as SQL (strings quoted, numbers
    at the column's scale, dates complete), 'NULL' for a nullable column without one, NULL
    (no default) for a NOT NULL column without one."""
    if not c.has_default:
        return "NULL" if c.nullable and not c.auto_increment else None
    if c.default is None:
        return "NULL"
    if isinstance(c.default, dict):  # an expression, e.g. current_timestamp()
        return default_sql(c)
    text, is_string, neg = c.default
    try:
        if c.kind in (Kind.INT, Kind.UINT):
            return str(int(Decimal(text)) * (-1 if neg else 1))
        if c.kind == Kind.DECIMAL:
            value = Decimal(text) * (-1 if neg else 1)
            return str(value.quantize(Decimal(1).scaleb(-c.scale)))
        if c.kind == Kind.DATETIME and len(text) == 10:
            text += " 00:00:00"
        if c.kind == Kind.DATETIME and c.fsp:
            text += ("." if "." not in text else "") + "0" * c.fsp
            head, _, frac = text.partition(".")
            text = f"{head}.{frac[: c.fsp]}"
    except (InvalidOperation, ValueError):
        pass
    if c.kind in (Kind.INT, Kind.UINT, Kind.DECIMAL) and not is_string:
        return ("-" if neg else "") + text
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def _statistics(db: Database, table: Table, backend: list[Row], proxied: _Proxied) -> list[Row]:
    base = backend[0]
    by_part = {(r.get("index_name"), r.get("seq_in_index")): r for r in backend}
    out = []
    for idx in ordered_indexes(table):
        backend_name = "PRIMARY" if idx.primary else (idx.backend[0] if idx.backend else "")
        for seq, cid in enumerate(idx.columns, start=1):
            c = table.column_by_id(cid)
            part = by_part.get((backend_name, seq), {})
            row = dict(base)
            row.update(
                table_name=table.name,
                non_unique=0 if idx.unique else 1,
                index_name=idx.name,
                seq_in_index=seq,
                column_name=c.name,
                collation="A",
                cardinality=part.get("cardinality"),
                # A plain column is indexed as declared; an onion's prefix is the proxy's.
                sub_part=part.get("sub_part") if c.plain else None,
                packed=None,
                nullable="YES" if c.nullable else "",
                index_type="BTREE",
                comment="",
                index_comment="",
            )
            out.append(row)
    return out


def _key_column_usage(
    db: Database, table: Table, backend: list[Row], proxied: _Proxied
) -> list[Row]:
    base = backend[0]

    def row(name: str, seq: int, cid: int, ref: tuple[str, str, str] | None) -> Row:
        schema, ref_table, ref_col = ref or (None, None, None)
        return {
            **base,
            "constraint_name": name,
            "table_name": table.name,
            "column_name": table.column_by_id(cid).name,
            "ordinal_position": seq,
            "position_in_unique_constraint": seq if ref else None,
            "referenced_table_schema": schema,
            "referenced_table_name": ref_table,
            "referenced_column_name": ref_col,
        }

    out = [
        row(idx.name, seq, cid, None)
        for idx in ordered_indexes(table)
        if idx.unique
        for seq, cid in enumerate(idx.columns, start=1)
    ]
    for fk in table.foreign_keys:
        for seq, (cid, ref) in enumerate(zip(fk.columns, fk.ref_columns, strict=True), 1):
            out.append(row(fk.name, seq, cid, (fk.ref_database, fk.ref_table, ref)))
    return out


def _referential_constraints(
    db: Database, table: Table, backend: list[Row], proxied: _Proxied
) -> list[Row]:
    base = backend[0]
    out = []
    for fk in table.foreign_keys:
        parent = proxied.schema.table(fk.ref_database, fk.ref_table)
        unique = None
        if parent is not None:  # the parent's key the constraint leans on, as InnoDB picks it
            ids = [parent.column(n).id for n in fk.ref_columns]  # type: ignore[union-attr]
            unique = next(
                (i.name for i in ordered_indexes(parent) if i.unique and i.columns == ids), None
            )
        out.append(
            {
                **base,
                "constraint_name": fk.name,
                "unique_constraint_schema": fk.ref_database,
                "unique_constraint_name": unique if parent is not None else base.get(
                    "unique_constraint_name"
                ),
                "match_option": "NONE",
                "update_rule": fk.on_update,
                "delete_rule": fk.on_delete,
                "table_name": table.name,
                "referenced_table_name": fk.ref_table,
            }
        )
    return out


def _table_constraints(
    db: Database, table: Table, backend: list[Row], proxied: _Proxied
) -> list[Row]:
    base = backend[0]
    return [
        {
            **base,
            "constraint_name": idx.name,
            "table_name": table.name,
            "constraint_type": "PRIMARY KEY" if idx.primary else "UNIQUE",
        }
        for idx in ordered_indexes(table)
        if idx.unique
    ] + [
        {
            **base,
            "constraint_name": fk.name,
            "table_name": table.name,
            "constraint_type": "FOREIGN KEY",
        }
        for fk in table.foreign_keys
    ]


SYNTH: dict[str, Callable[[Database, Table, list[Row], _Proxied], list[Row]]] = {
    "columns": _columns,
    "statistics": _statistics,
    "key_column_usage": _key_column_usage,
    "table_constraints": _table_constraints,
    "referential_constraints": _referential_constraints,
}


# ---- the answer -----------------------------------------------------------------------------


def _finish(
    node: exp.Expression,
    sql: str,
    names: list[str],
    schema: Schema,
    database: str | None,
    fetched: Sequence[Fetched],
) -> RowsDecoder:
    proxied = _Proxied(schema)
    defs: dict[str, list[ColumnDefinition]] = {}
    tables: dict[str, list[Row]] = {}
    for name, (definitions, rows) in zip(names, fetched, strict=True):
        keys = [d.name.decode().lower() for d in definitions]
        dicts = [
            {k: convert(d, v) for k, d, v in zip(keys, definitions, row, strict=True)}
            for row in rows
        ]
        defs[name] = list(definitions)
        tables[name] = translate(name, dicts, proxied)
    try:
        return evaluate(node, sql, defs, tables, database, LOOKUPS)
    except Unsupported:
        raise
    except Exception:
        # The executor lacks a function or construct: refused, never passed through.
        raise Unsupported("this information_schema query (the proxy cannot evaluate it)") from None
