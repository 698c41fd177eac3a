"""The plaintext schema for clients: SHOW TABLES, DESCRIBE / SHOW COLUMNS, SHOW CREATE TABLE.

SHOW [FULL] TABLES goes to the backend (plain tables stay listed) and the decoder renames
`t_<id>` to the plaintext name, hides the proxy's own tables and applies LIKE here (the
backend only knows the anonymized names). DESCRIBE and SHOW CREATE TABLE are answered from
the schema without the backend: `Execute(sql=None, decoder=d)` with `d.rows` set, so the
session sends `d.definitions()` and `d.text_row(v)` for each `v in d.decode([])`.
SHOW CREATE TABLE writes each column's policy as its COMMENT, so a dump restored through the
proxy gets the same policies. SHOW INDEX (Django's introspection) is answered from the
schema too: the plaintext indexes, not the backend's onion indexes; Cardinality NULL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from onion.encoding import Kind
from proxy.protocol.codec import ColumnDefinition, make_text_row
from proxy.rewrite import foreign
from proxy.rewrite.columns import default_sql
from proxy.rewrite.decode import (
    CHARSET_UTF8MB4_CI,
    T_LONG,
    T_LONGLONG,
    T_VAR_STRING,
    OutCol,
)
from proxy.rewrite.errors import Unsupported
from proxy.rewrite.plan import LAYERS_TABLE, Template, quote_ident
from proxy.rewrite.resolve import Ctx
from proxy.schema import DEFAULT_ONIONS, Column, Database, Index, Table

_DISPLAY = {
    8: "tinyint({})",
    16: "smallint({})",
    24: "mediumint({})",
    32: "int({})",
    64: "bigint({})",
}
_WIDTH = {8: (4, 3), 16: (6, 5), 24: (9, 8), 32: (11, 10), 64: (20, 20)}


def _text_col(name: str) -> OutCol:
    return OutCol(name, T_VAR_STRING, 256, charset=CHARSET_UTF8MB4_CI)


@dataclass
class ListDecoder:
    """Decoder-compatible: text columns; rows from the backend mapped, or given."""

    columns: list[OutCol]
    rows: list[tuple[Any, ...]] | None = None  # an answer made here: no backend query
    rename: dict[str, str] = field(default_factory=dict)  # backend table name -> plaintext
    hide: set[str] = field(default_factory=set)
    like: re.Pattern[str] | None = None
    database: str = ""
    sort: bool = False  # by name, as MariaDB lists SHOW TABLES (byte order of the names)

    def bind(self, crypto: object, lits: object) -> ListDecoder:
        return self  # nothing secret, nothing per statement

    def definitions(self, backend: Sequence[bytes] = ()) -> list[ColumnDefinition]:
        return [c.definition(self.database) for c in self.columns]

    def decode(self, rows: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
        if self.rows is not None:
            return list(self.rows)
        out = []
        for row in rows:
            values = [v.decode() if isinstance(v, bytes | bytearray) else v for v in row]
            name = values[0]
            if name in self.hide:
                continue
            name = self.rename.get(name, name)
            if self.like is not None and not self.like.fullmatch(name):
                continue
            out.append((name, *values[1:]))
        if self.sort:
            out.sort(key=lambda r: str(r[0]).encode("utf-8"))
        return out

    def text_row(self, values: Sequence[Any]) -> bytes:
        return make_text_row([c.encode(v) for c, v in zip(self.columns, values, strict=True)])


def like_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def handles(node: exp.Expression, ctx: Ctx) -> bool:
    """Whether the statement concerns a database or table the proxy manages."""
    if isinstance(node, exp.Describe):
        return _target(node.this, None, ctx) is not None
    if not isinstance(node, exp.Show):
        return False
    kind = str(node.name).upper()
    db = node.args.get("db")
    db_name = (db.name if isinstance(db, exp.Expression) else db) or ctx.database
    if kind == "TABLES":
        return db_name is not None and ctx.schema.database(db_name) is not None
    if kind in ("COLUMNS", "CREATE TABLE", "INDEX"):
        target = node.args.get("target")
        return target is not None and ctx.schema.table(db_name, _name(target)) is not None
    return False


def _name(node: Any) -> str:
    return node.name if isinstance(node, exp.Expression) else str(node)


def _target(t: Any, db: str | None, ctx: Ctx) -> tuple[Database, Table] | None:
    if isinstance(t, exp.Table):
        db = t.args["db"].name if t.args.get("db") is not None else db
        name = t.name
    else:
        name = _name(t)
    database = ctx.schema.database(db or ctx.database or "")
    table = database.tables.get(name) if database is not None else None
    return (database, table) if database is not None and table is not None else None


def show(node: exp.Expression, *, ctx: Ctx) -> Template:
    if isinstance(node, exp.Describe):
        found = _target(node.this, None, ctx)
        assert found is not None
        return _columns(found[0], found[1], full=False)
    kind = str(node.name).upper()
    db = node.args.get("db")
    db_name = (db.name if isinstance(db, exp.Expression) else db) or ctx.database or ""
    if node.args.get("where") is not None:
        raise Unsupported("SHOW ... WHERE")
    if kind == "TABLES":
        return _tables(node, ctx.schema.databases[db_name], db_name)
    found = _target(node.args["target"], db_name, ctx)
    assert found is not None
    if node.args.get("like") is not None:
        raise Unsupported("SHOW COLUMNS ... LIKE")
    if kind == "INDEX":
        return _indexes(found[0], found[1])
    if kind == "COLUMNS":
        return _columns(found[0], found[1], full=bool(node.args.get("full")))
    groups = {gid: name for name, gid in ctx.schema.join_groups.items()}
    return _create(found[0], found[1], groups)


def _tables(node: exp.Show, db: Database, db_name: str) -> Template:
    full = bool(node.args.get("full"))
    like = node.args.get("like")
    pattern = like.name if isinstance(like, exp.Literal) else None
    title = f"Tables_in_{db_name}" + (f" ({pattern})" if pattern is not None else "")
    cols = [_text_col(title)] + ([_text_col("Table_type")] if full else [])
    decoder = ListDecoder(
        cols,
        rename={t.backend_name: t.name for t in db.tables.values()},
        hide={LAYERS_TABLE},
        like=like_regex(pattern) if pattern is not None else None,
        database=db_name,
        sort=True,  # backend names t_10 < t_9 would otherwise order the plaintext ones
    )
    sql = f"SHOW {'FULL ' if full else ''}TABLES FROM {quote_ident(db_name)}"
    return Template(segments=[sql], decoder=decoder)  # type: ignore[arg-type]


def display_type(col: Column) -> str:
    k = col.kind
    if k in (Kind.INT, Kind.UINT):
        signed, unsigned = _WIDTH[col.bits]
        if k == Kind.UINT:
            return _DISPLAY[col.bits].format(unsigned) + " unsigned"
        return _DISPLAY[col.bits].format(signed)
    if k == Kind.DECIMAL:
        return f"decimal({col.precision},{col.scale})" + (" unsigned" if col.unsigned else "")
    if k == Kind.STRING:
        return f"{col.text}({col.length})" if col.text in ("char", "varchar") else col.text
    if k == Kind.DATETIME:
        return f"datetime({col.fsp})" if col.fsp else "datetime"
    return col.sql_type.lower()


def column_key(table: Table, col: Column) -> str:
    """DESCRIBE's Key / COLUMNS.COLUMN_KEY as MariaDB derives it (sql/table.cc): PRI for
    every column of the primary key (without one, of the first UNIQUE key whose columns are
    all NOT NULL, which MariaDB promotes), else UNI for the column of a one-column UNIQUE
    key, else MUL for the first column of any other key."""
    primary = next((i for i in table.indexes if i.primary), None)
    if primary is None:
        primary = next(
            (
                i
                for i in table.indexes
                if i.unique and all(not table.column_by_id(c).nullable for c in i.columns)
            ),
            None,
        )
    if primary is not None and col.id in primary.columns:
        return "PRI"
    firsts = [i for i in table.indexes if i is not primary and i.columns[0] == col.id]
    if any(i.unique and len(i.columns) == 1 for i in firsts):
        return "UNI"
    return "MUL" if firsts else ""


def _default(col: Column) -> str | None:
    if not col.has_default or col.default is None:
        return None
    if isinstance(col.default, dict):
        return str(col.default["sql"])
    text, _, neg = col.default
    return ("-" if neg else "") + text


def _columns(db: Database, table: Table, *, full: bool) -> Template:
    names = [
        "Field",
        "Type",
        "Collation",
        "Null",
        "Key",
        "Default",
        "Extra",
        "Privileges",
        "Comment",
    ]
    if not full:
        names = [n for n in names if n not in ("Collation", "Privileges", "Comment")]
    rows = []
    for c in table.columns:
        values = {
            "Field": c.name,
            "Type": display_type(c),
            "Collation": (c.collation or "utf8mb4_general_ci") if c.kind == Kind.STRING else None,
            "Null": "YES" if c.nullable else "NO",
            "Key": column_key(table, c),
            "Default": _default(c),
            "Extra": "auto_increment" if c.auto_increment else "",
            "Privileges": "select,insert,update,references",
            "Comment": policy_comment(c),
        }
        rows.append(tuple(values[n] for n in names))
    decoder = ListDecoder([_text_col(n) for n in names], rows=rows, database=db.name)
    return Template(segments=None, decoder=decoder)  # type: ignore[arg-type]


def policy_comment(col: Column, groups: dict[int, str] | None = None) -> str:
    if col.auto_increment:
        return ""
    if col.plain:
        return "cryptdb: plain"
    parts = [f"min={col.min_level}"]
    if tuple(col.onions) != DEFAULT_ONIONS.get(Kind(col.kind)):
        parts.append("onions=" + ",".join(col.onions))
    if col.join_group is not None and groups is not None:
        parts.append(f"join={groups.get(col.join_group, col.join_group)}")
    return "cryptdb: " + "; ".join(parts)


def create_table_sql(table: Table, groups: dict[int, str], database: str) -> str:
    lines = []
    for c in table.columns:
        line = f"  {quote_ident(c.name)} {display_type(c)}"
        if c.collation:
            line += f" COLLATE {c.collation}"
        line += "" if c.nullable else " NOT NULL"
        if c.has_default:
            line += f" DEFAULT {default_sql(c)}"
        elif c.nullable:
            line += " DEFAULT NULL"
        if c.auto_increment:
            line += " AUTO_INCREMENT"
        comment = policy_comment(c, groups)
        if comment:
            line += " COMMENT '" + comment.replace("'", "''") + "'"
        lines.append(line)
    for idx in table.indexes:
        cols = ", ".join(quote_ident(table.column_by_id(i).name) for i in idx.columns)
        if idx.primary:
            lines.append(f"  PRIMARY KEY ({cols})")
        else:
            lines.append(f"  {'UNIQUE ' if idx.unique else ''}KEY {quote_ident(idx.name)} ({cols})")
    lines += foreign.shown_lines(table, database)
    engine = f" ENGINE={table.engine}" if table.engine else ""
    return f"CREATE TABLE {quote_ident(table.name)} (\n" + ",\n".join(lines) + f"\n){engine}"


def _create(db: Database, table: Table, groups: dict[int, str]) -> Template:
    decoder = ListDecoder(
        [_text_col("Table"), _text_col("Create Table")],
        rows=[(table.name, create_table_sql(table, groups, db.name))],
        database=db.name,
    )
    return Template(segments=None, decoder=decoder)  # type: ignore[arg-type]


def ordered_indexes(table: Table) -> list[Index]:
    """MariaDB's key order (SHOW INDEX, information_schema.STATISTICS): the primary key,
    then unique keys, then the others, each group as declared."""
    return sorted(table.indexes, key=lambda i: 0 if i.primary else 1 if i.unique else 2)


def _indexes(db: Database, table: Table) -> Template:
    numbers = {"Non_unique": 1, "Seq_in_index": 2, "Cardinality": 21, "Sub_part": 3}
    names = [
        "Table",
        "Non_unique",
        "Key_name",
        "Seq_in_index",
        "Column_name",
        "Collation",
        "Cardinality",
        "Sub_part",
        "Packed",
        "Null",
        "Index_type",
        "Comment",
        "Index_comment",
        "Ignored",
    ]
    cols = [
        OutCol(n, T_LONG if n == "Seq_in_index" else T_LONGLONG, numbers[n])
        if n in numbers
        else _text_col(n)
        for n in names
    ]
    rows = []
    for idx in ordered_indexes(table):
        for seq, cid in enumerate(idx.columns, start=1):
            c = table.column_by_id(cid)
            null = "YES" if c.nullable else ""
            rows.append(
                (table.name, 0 if idx.unique else 1, idx.name, seq, c.name, "A", None, None)
                + (None, null, "BTREE", "", "", "NO")
            )
    decoder = ListDecoder(cols, rows=rows, database=db.name)
    return Template(segments=None, decoder=decoder)  # type: ignore[arg-type]
