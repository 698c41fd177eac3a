"""The in-proxy SELECT evaluator (proxy.rewrite.evaluate), without a database: MariaDB's
information_schema semantics on rows given here."""

from __future__ import annotations

from typing import Any

import pytest
import sqlglot

from proxy.protocol.codec import ColumnDefinition
from proxy.rewrite.decode import T_LONGLONG, T_VAR_STRING
from proxy.rewrite.errors import Unsupported
from proxy.rewrite.evaluate import RowsDecoder, check_supported, evaluate

UTF8 = 45


def text(name: str) -> ColumnDefinition:
    return ColumnDefinition(
        name=name.encode(), type=T_VAR_STRING, length=256, charset=UTF8, org_name=name.encode()
    )


def number(name: str) -> ColumnDefinition:
    return ColumnDefinition(name=name.encode(), type=T_LONGLONG, length=21, org_name=name.encode())


DEFS = {
    "columns": [
        text("TABLE_SCHEMA"),
        text("TABLE_NAME"),
        text("COLUMN_NAME"),
        number("ORDINAL_POSITION"),
        text("IS_NULLABLE"),
    ],
    "tables": [text("TABLE_SCHEMA"), text("TABLE_NAME"), text("TABLE_TYPE")],
}
COLUMNS = [
    ("shop", "Orders", "id", 1, "NO"),
    ("shop", "Orders", "Total", 2, "YES"),
    ("shop", "orders", "x", 1, "YES"),  # another table: names differing only in case
    ("shop", "_users", "name", 1, "NO"),
    ("other", "t", "a", 1, "YES"),
]
TABLES = [
    ("shop", "Orders", "BASE TABLE"),
    ("shop", "orders", "BASE TABLE"),
    ("shop", "_users", "VIEW"),
    ("other", "t", "BASE TABLE"),
]
LOOKUPS = {(t, c) for t in DEFS for c in ("table_schema", "table_name")}


def rows_of(name: str, values: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    keys = [d.name.decode().lower() for d in DEFS[name]]
    return [dict(zip(keys, v, strict=True)) for v in values]


def run(sql: str, database: str | None = "shop") -> RowsDecoder:
    node = sqlglot.parse_one(sql, read="mysql")
    tables = {"columns": rows_of("columns", COLUMNS), "tables": rows_of("tables", TABLES)}
    decoder = evaluate(node, sql, DEFS, tables, database, LOOKUPS)
    for row in decoder.decode([]):
        decoder.text_row(row)  # every value encodes
    return decoder


def names(d: RowsDecoder) -> list[str]:
    return [c.name.decode() for c in d.definitions()]


def test_names_as_written_and_star_in_backend_order() -> None:
    d = run(
        "SELECT Column_Name, c.ordinal_position AS Pos, COUNT(*) FROM INFORMATION_SCHEMA.COLUMNS c "
        "WHERE c.Table_Schema = DATABASE() GROUP BY Column_Name, c.ordinal_position"
    )
    assert names(d) == ["Column_Name", "Pos", "COUNT(*)"]
    assert d.definitions()[0].charset == UTF8 and d.definitions()[1].type == T_LONGLONG
    assert names(run("SELECT * FROM information_schema.tables")) == [
        "TABLE_SCHEMA",
        "TABLE_NAME",
        "TABLE_TYPE",
    ]
    d = run("SELECT t.*, 1 FROM information_schema.tables t")
    assert names(d) == ["TABLE_SCHEMA", "TABLE_NAME", "TABLE_TYPE", "1"]


def test_equality_on_names_is_case_sensitive_other_text_comparisons_are_not() -> None:
    q = "SELECT column_name FROM information_schema.columns WHERE table_schema = 'shop' AND "
    assert run(q + "table_name = 'orders'").decode([]) == [("x",)]
    assert run(q + "table_name IN ('orders')").decode([]) == [("x",)]
    # A longer IN list, LIKE, <>: case-insensitive, as utf8mb3_general_ci.
    assert len(run(q + "table_name IN ('ORDERS', 'nothing')").decode([])) == 3
    assert len(run(q + "table_name LIKE 'ORD%'").decode([])) == 3
    assert len(run(q + "table_name NOT LIKE 'ORD%'").decode([])) == 1
    assert run(q + "column_name = 'TOTAL'").decode([]) == [("Total",)]
    assert len(run(q + "is_nullable = 'no'").decode([])) == 2
    assert run(q + "column_name BETWEEN 'T' AND 'U'").decode([]) == [("Total",)]


def test_database_function_and_numeric_strings() -> None:
    q = "SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE()"
    assert len(run(q).decode([])) == 4
    assert run(q, database=None).decode([]) == []
    d = run(q + " AND ordinal_position = '2'")
    assert d.decode([]) == [("Total",)]


def test_order_by_text_is_case_insensitive() -> None:
    d = run(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'shop' "
        "ORDER BY column_name"
    )
    assert [r[0] for r in d.decode([])] == ["id", "name", "Total", "x"]
    d = run("SELECT BINARY column_name AS b FROM information_schema.columns ORDER BY 1")
    assert [r[0] for r in d.decode([])] == ["Total", "a", "id", "name", "x"]
    assert d.definitions()[0].charset == 63  # BINARY x: a binary string


def test_group_concat() -> None:
    d = run(
        "SELECT table_name, GROUP_CONCAT(column_name ORDER BY ordinal_position DESC "
        "SEPARATOR '|') AS cols, GROUP_CONCAT(DISTINCT table_schema) FROM "
        "information_schema.columns WHERE table_schema = 'shop' GROUP BY table_name "
        "ORDER BY BINARY table_name"
    )
    assert d.decode([]) == [
        ("Orders", "Total|id", "shop"),
        ("_users", "name", "shop"),
        ("orders", "x", "shop"),
    ]


def test_joins_subqueries_unions() -> None:
    d = run(
        "SELECT t.table_type, COUNT(*) AS n FROM information_schema.tables t "
        "JOIN information_schema.columns c USING (table_schema, table_name) "
        "WHERE t.table_schema = 'shop' GROUP BY t.table_type ORDER BY n"
    )
    assert d.decode([]) == [("VIEW", 1), ("BASE TABLE", 3)]
    d = run(
        "SELECT table_name FROM information_schema.tables WHERE table_name IN "
        "(SELECT table_name FROM information_schema.columns WHERE column_name = 'A')"
    )
    assert d.decode([]) == [("t",)]
    d = run(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'other' "
        "UNION ALL SELECT column_name FROM information_schema.columns WHERE table_schema = 'other'"
    )
    assert sorted(d.decode([])) == [("a",), ("t",)]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT no_such_function(table_name) FROM information_schema.tables",
        "SELECT table_name FROM information_schema.tables WHERE table_name REGEXP 'x'",
        "SELECT table_name, ROW_NUMBER() OVER (ORDER BY table_name) FROM information_schema.tables",
    ],
)
def test_what_the_executor_cannot_run_raises(sql: str) -> None:
    with pytest.raises(Exception):  # noqa: B017 - the caller refuses on any of them
        run(sql)


@pytest.mark.parametrize(
    "sql",
    [
        # The executor compiles queries into Python: nothing may reach code position.
        "SELECT table_name FROM information_schema.tables AS `t\\` WHERE `t\\`.table_name = 'x'",
        'SELECT table_name AS `a"b` FROM information_schema.tables',
        "SELECT table_name COLLATE utf8_bin FROM information_schema.tables",
        "SELECT _utf8mb4'x' FROM information_schema.tables",
        "SELECT @x FROM information_schema.tables",
        "SELECT @@version FROM information_schema.tables",
        "SELECT CAST(table_name AS CHAR CHARACTER SET utf8mb4) FROM information_schema.tables",
        "SELECT __import__('os') FROM information_schema.tables",
        "SELECT table_name FROM information_schema.tables WHERE MATCH(table_name) AGAINST ('x')",
    ],
)
def test_unsafe_or_unknown_constructs_are_refused_before_anything_runs(sql: str) -> None:
    with pytest.raises(Unsupported):
        check_supported(sqlglot.parse_one(sql, read="mysql"))
