"""information_schema answered with the plaintext schema (proxy.rewrite.infoschema).

The differential test creates the same tables through the live proxy (encrypted) and
directly on MariaDB, runs ORM-style introspection queries on both and compares the answers.
Columns that differ by design, and are not compared: table sizes and counters in TABLES
(TABLE_ROWS, AVG_ROW_LENGTH, DATA_LENGTH, MAX_DATA_LENGTH, INDEX_LENGTH, DATA_FREE,
AUTO_INCREMENT, CREATE_TIME, UPDATE_TIME, CHECK_TIME, CHECKSUM, MAX_INDEX_LENGTH: the
backend's, for the onion table), STATISTICS.CARDINALITY (the backend index's estimate), and
COLUMNS.COLUMN_COMMENT where the proxy writes a policy the plaintext DDL left implicit.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from proxy.devbackend import DevBackend
from proxy.rewrite import Evaluate, PassThrough, Unsupported
from tests.conftest import ProxyProcess
from tests.rewrite_support import EncryptedRunner, connect, extra_database

DDL = [
    """CREATE TABLE customers (
      id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
      email VARCHAR(120) NOT NULL COMMENT 'cryptdb: min=DET',
      name VARCHAR(80) NOT NULL DEFAULT 'anon',
      age SMALLINT UNSIGNED,
      balance DECIMAL(10,2) NOT NULL DEFAULT 0.5,
      born DATE DEFAULT '2000-01-01',
      seen DATETIME(3),
      bio TEXT COMMENT 'cryptdb: plain',
      code CHAR(8) COLLATE utf8mb4_bin COMMENT 'cryptdb: min=RND; onions=eq',
      UNIQUE KEY uq_email (email),
      KEY k_age_born (age, born)
    )""",
    """CREATE TABLE orders (
      order_id BIGINT NOT NULL AUTO_INCREMENT,
      customer_id INT NOT NULL,
      total DECIMAL(12,3),
      qty TINYINT NOT NULL DEFAULT -1,
      note VARCHAR(200) COMMENT 'cryptdb: plain',
      PRIMARY KEY (order_id),
      KEY (customer_id),
      UNIQUE KEY uq_pair (customer_id, qty)
    )""",
    # No PRIMARY KEY: MariaDB promotes the UNIQUE NOT NULL key (COLUMN_KEY PRI).
    """CREATE TABLE tags (
      label VARCHAR(30) NOT NULL,
      weight DECIMAL(6,2) UNSIGNED DEFAULT 1.5,
      at DATETIME(3) DEFAULT '2020-01-01',
      quoted VARCHAR(10) DEFAULT 'it''s',
      big BIGINT UNSIGNED,
      UNIQUE KEY (label),
      KEY (weight, label)
    )""",
]
# Policies written in the DDL, which the proxy reports back as they were written.
EXPLICIT = {"email", "bio", "code", "note"}

DJANGO_DESCRIPTION = """
    SELECT
        column_name, data_type, character_maximum_length,
        numeric_precision, numeric_scale, extra, column_default,
        CASE
            WHEN collation_name = %s THEN NULL
            ELSE collation_name
        END AS collation_name,
        CASE
            WHEN column_type LIKE '%% unsigned' THEN 1
            ELSE 0
        END AS is_unsigned
    FROM information_schema.columns
    WHERE table_name = %s AND table_schema = DATABASE()"""
DJANGO_CONSTRAINTS = """
    SELECT kc.`constraint_name`, kc.`column_name`,
        kc.`referenced_table_name`, kc.`referenced_column_name`,
        c.`constraint_type`
    FROM
        information_schema.key_column_usage AS kc,
        information_schema.table_constraints AS c
    WHERE
        kc.table_schema = DATABASE() AND
        (
            kc.referenced_table_schema = DATABASE() OR
            kc.referenced_table_schema IS NULL
        ) AND
        c.table_schema = kc.table_schema AND
        c.constraint_name = kc.constraint_name AND
        c.constraint_type != 'CHECK' AND
        c.table_name = kc.table_name AND
        kc.table_name = %s
    ORDER BY kc.`ordinal_position`"""
DJANGO_RELATIONS = """
    SELECT column_name, referenced_column_name, referenced_table_name
    FROM information_schema.key_column_usage
    WHERE table_name = %s
        AND table_schema = DATABASE()
        AND referenced_table_schema = DATABASE()
        AND referenced_table_name IS NOT NULL
        AND referenced_column_name IS NOT NULL"""
DJANGO_CHECKS = """
    SELECT cc.constraint_name AS constraint_name, cc.check_clause AS check_clause
    FROM information_schema.check_constraints AS cc,
         information_schema.table_constraints AS tc
    WHERE cc.constraint_schema = DATABASE() AND tc.table_schema = cc.constraint_schema
        AND cc.constraint_name = tc.constraint_name AND tc.constraint_type = 'CHECK'
        AND tc.table_name = %s"""

# (query, parameters, ordered); parameters are bound client-side, as ORMs do.
QUERIES: list[tuple[str, tuple[Any, ...] | None, bool]] = [
    (DJANGO_DESCRIPTION, ("utf8mb4_general_ci", "customers"), False),
    (DJANGO_DESCRIPTION, ("utf8mb4_general_ci", "orders"), False),
    # Ordered by ordinal_position only: ties (position 1 of each key) in no defined order.
    (DJANGO_CONSTRAINTS, ("customers",), False),
    (DJANGO_CONSTRAINTS, ("orders",), False),
    (DJANGO_RELATIONS, ("orders",), False),
    (DJANGO_CHECKS, ("orders",), False),
    (
        "SELECT table_collation FROM information_schema.tables "
        "WHERE table_schema = DATABASE() AND table_name = %s",
        ("customers",),
        False,
    ),
    (
        "SELECT table_name, table_type FROM information_schema.tables "
        "WHERE table_schema = DATABASE()",
        None,
        False,
    ),
    (
        "SELECT TABLE_NAME, ENGINE FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = database() "
        "AND Table_Name LIKE 'CUST%%' AND table_type = 'BASE TABLE'",
        None,
        False,
    ),
    (
        "SELECT table_name, index_name, non_unique, seq_in_index, column_name, collation, "
        "sub_part, nullable, index_type FROM information_schema.statistics "
        "WHERE table_schema = DATABASE() ORDER BY table_name, index_name, seq_in_index",
        None,
        True,
    ),
    (
        "SELECT constraint_name, table_name, column_name, ordinal_position, "
        "referenced_table_name FROM information_schema.key_column_usage "
        "WHERE table_schema = DATABASE() ORDER BY table_name, constraint_name, ordinal_position",
        None,
        True,
    ),
    (
        "SELECT * FROM information_schema.table_constraints WHERE table_schema = DATABASE()",
        None,
        False,
    ),
    (
        "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE()",
        None,
        False,
    ),
    (
        "SELECT table_name, COUNT(*) AS n FROM information_schema.columns "
        "WHERE table_schema = DATABASE() GROUP BY table_name ORDER BY table_name",
        None,
        True,
    ),
    (
        "SELECT column_name, ordinal_position, column_type, is_nullable, column_key "
        "FROM information_schema.columns WHERE table_schema = DATABASE() "
        "AND table_name = 'orders' ORDER BY ordinal_position",
        None,
        True,
    ),
    (
        "SELECT c.Column_Name FROM information_schema.COLUMNS c WHERE c.Table_Schema = DATABASE() "
        "AND c.table_name = 'CUSTOMERS'",
        None,
        False,
    ),  # `=` on names: case-sensitive
    (
        "SELECT DISTINCT data_type FROM information_schema.columns "
        "WHERE table_schema = DATABASE() ORDER BY data_type",
        None,
        True,
    ),
    (
        "SELECT t.table_name, t.engine, c.column_name, c.is_nullable, c.data_type "
        "FROM information_schema.tables t JOIN information_schema.columns c "
        "ON c.table_schema = t.table_schema AND c.table_name = t.table_name "
        "WHERE t.table_schema = DATABASE() ORDER BY t.table_name, c.ordinal_position",
        None,
        True,
    ),
    (
        "SELECT COUNT(*) AS indexes FROM information_schema.statistics "
        "WHERE table_schema = DATABASE() AND non_unique = 0",
        None,
        False,
    ),
    # MariaDB's comparisons: text case-insensitive but for `=` (one-value IN) on TABLE_SCHEMA and
    # TABLE_NAME (looked up case-sensitively), numeric strings against numbers as numbers.
    (
        "SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() "
        "AND is_nullable = 'no' AND column_name <> 'ID'",
        None,
        False,
    ),
    (
        "SELECT COUNT(*) FROM information_schema.statistics WHERE table_schema = DATABASE() "
        "AND index_name = 'primary'",
        None,
        False,
    ),
    (
        "SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() "
        "AND ordinal_position = '2'",
        None,
        False,
    ),
    (
        "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
        "AND table_name IN ('orders', 'CUSTOMERS')",
        None,
        False,
    ),
    (
        "SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() "
        "AND data_type IN ('INT', 'Varchar') ORDER BY column_name",
        None,
        True,
    ),
    (
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND column_name > 'M' "
        "ORDER BY table_name, column_name",
        None,
        True,
    ),
]
# Other ORMs' introspection (Rails, Laravel, Prisma, TypeORM).
QUERIES += [
    (
        "SELECT table_name FROM (SELECT table_name, table_type FROM information_schema.tables "
        "WHERE table_schema = database()) _subquery WHERE _subquery.table_type = 'BASE TABLE' "
        "AND _subquery.table_name = 'orders'",
        None,
        False,
    ),
    (
        "SELECT column_name FROM information_schema.statistics WHERE index_name = 'PRIMARY' "
        "AND table_schema = database() AND table_name = 'orders' ORDER BY seq_in_index",
        None,
        True,
    ),
    (
        "SELECT fk.referenced_table_name AS 'to_table', fk.referenced_column_name AS "
        "'primary_key', fk.column_name AS 'column', fk.constraint_name AS 'name', "
        "rc.update_rule AS 'on_update', rc.delete_rule AS 'on_delete' "
        "FROM information_schema.referential_constraints rc "
        "JOIN information_schema.key_column_usage fk USING (constraint_schema, constraint_name) "
        "WHERE fk.referenced_column_name IS NOT NULL AND fk.table_schema = database() "
        "AND fk.table_name = 'orders' AND rc.constraint_schema = database() "
        "AND rc.table_name = 'orders'",
        None,
        False,
    ),
    (
        "select index_name as `name`, group_concat(column_name order by seq_in_index) as "
        "`columns`, index_type as `type`, not non_unique as `unique` "
        "from information_schema.statistics where table_schema = database() "
        "and table_name = %s group by index_name, index_type, non_unique",
        ("customers",),
        False,
    ),
    (
        "SELECT DISTINCT BINARY table_info.table_name AS table_name, "
        "table_info.create_options AS create_options, table_info.table_comment AS table_comment "
        "FROM information_schema.tables AS table_info JOIN information_schema.columns AS "
        "column_info ON BINARY column_info.table_name = BINARY table_info.table_name "
        "WHERE table_info.table_schema = database() AND column_info.table_schema = database() "
        "AND table_info.table_type = 'BASE TABLE' ORDER BY BINARY table_info.table_name",
        None,
        True,
    ),
    (
        "SELECT `TABLE_SCHEMA`, `TABLE_NAME`, `COLUMN_NAME`, IFNULL(`COLUMN_DEFAULT`, 'none') d, "
        "`IS_NULLABLE` FROM `INFORMATION_SCHEMA`.`COLUMNS` "
        "WHERE (`TABLE_SCHEMA` = database() AND `TABLE_NAME` = 'customers')",
        None,
        False,
    ),
    (
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND table_name IN (SELECT table_name "
        "FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name LIKE 'o%%')",
        None,
        False,
    ),
    (
        "SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() "
        "AND column_name NOT LIKE '%%id' AND column_name BETWEEN 'A' AND 'n' FOR UPDATE",
        None,
        False,
    ),
]
# Queries expected to find nothing on either side: checks and foreign keys (the proxy
# creates neither), a name in the wrong case.
EMPTY_ON_BOTH = ("CHECK", "referenced_table_schema = DATABASE()", "referential_", "CUSTOMERS'")
# Whole rows: every column but those listed in the module notes.
STAR = {
    "columns": {"COLUMN_COMMENT"},
    "tables": {
        "TABLE_ROWS",
        "AVG_ROW_LENGTH",
        "DATA_LENGTH",
        "MAX_DATA_LENGTH",
        "INDEX_LENGTH",
        "DATA_FREE",
        "AUTO_INCREMENT",
        "CREATE_TIME",
        "UPDATE_TIME",
        "CHECK_TIME",
        "CHECKSUM",
        "MAX_INDEX_LENGTH",
    },
    "statistics": {"CARDINALITY"},
    "key_column_usage": set(),
    "table_constraints": set(),
}
BACKEND_NAME = re.compile(r"^(t_\d+|c\d+(_(eq|ord|add|search|iv))?|i\d+o?)$")
LAYERS = "_cryptdb_layers"


@pytest.fixture
def plain_db(backend: DevBackend) -> Iterator[str]:
    with extra_database(backend, "plain") as name:
        yield name


@pytest.fixture
def pair(
    encrypted_proxy: ProxyProcess, database: str, backend: DevBackend, plain_db: str
) -> Iterator[tuple[pymysql.Connection, pymysql.Connection]]:
    """The same tables through the proxy (in `database`) and directly (in `plain_db`)."""
    enc = encrypted_proxy.connect(database, autocommit=True, charset="utf8mb4")
    plain = connect(backend, plain_db)
    for sql in DDL:
        for conn in (enc, plain):
            with conn.cursor() as cur:
                cur.execute(sql)
    with enc.cursor() as cur:  # a peel: the backend now holds `_cryptdb_layers` too
        cur.execute("SELECT id FROM customers WHERE age > 3")
    yield enc, plain
    enc.close()
    plain.close()


def run(conn: pymysql.Connection, sql: str, args: Any = None) -> tuple[list[str], list[tuple]]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return [d[0] for d in cur.description], list(cur.fetchall())


def masked(rows: list[tuple], db: str, into: str) -> list[tuple]:
    return [tuple(into if v == db else v for v in row) for row in rows]


def test_orm_introspection_matches_plaintext_mariadb(pair, database: str, plain_db: str) -> None:
    enc, plain = pair
    for sql, args, ordered in QUERIES:
        names_e, rows_e = run(enc, sql, args)
        names_p, rows_p = run(plain, sql, args)
        rows_p = masked(rows_p, plain_db, database)
        assert names_e == names_p, sql
        if ordered:
            assert rows_e == rows_p, sql
        else:
            assert Counter(rows_e) == Counter(rows_p), sql
        assert rows_p or any(m in sql for m in EMPTY_ON_BOTH), f"vacuous comparison: {sql}"


def test_whole_rows_match_but_for_documented_columns(pair, database: str, plain_db: str) -> None:
    enc, plain = pair
    for table, skip in STAR.items():
        sql = f"SELECT * FROM information_schema.{table.upper()} WHERE table_schema = DATABASE()"
        with enc.cursor() as ce, plain.cursor() as cp:
            ce.execute(sql)
            cp.execute(sql)
            assert [(d[0], d[1]) for d in ce.description] == [(d[0], d[1]) for d in cp.description]
            names = [d[0] for d in ce.description]
            keep = [i for i, n in enumerate(names) if n not in skip]
            got = [tuple(r[i] for i in keep) for r in ce.fetchall()]
            want = [
                tuple(r[i] for i in keep) for r in masked(list(cp.fetchall()), plain_db, database)
            ]
        assert Counter(got) == Counter(want), table
    # Comments: the policy where the DDL wrote one, else the proxy's default one.
    _, rows = run(
        enc,
        "SELECT column_name, column_comment FROM information_schema.columns "
        "WHERE table_schema = DATABASE()",
    )
    _, direct_rows = run(
        plain,
        "SELECT column_name, column_comment FROM information_schema.columns "
        "WHERE table_schema = DATABASE()",
    )
    comments = dict(rows)
    for name, comment in direct_rows:
        if name in EXPLICIT or name in ("id", "order_id"):  # AUTO_INCREMENT: no policy
            assert comments[name] == comment, name
        else:
            assert comments[name] == "cryptdb: min=OPE", name


def test_no_backend_name_ever_appears(pair, database: str) -> None:
    """No backend table, onion column or backend index name, no onion type, in any value
    but the database names (which are the backend's own). Also when every database is
    read (only this test's database is checked: other tests' backends are their own)."""
    enc, _ = pair
    for table in ("columns", "tables", "statistics", "key_column_usage", "table_constraints"):
        for where in (" WHERE table_schema = DATABASE()", ""):
            names, rows = run(enc, f"SELECT * FROM information_schema.{table.upper()}{where}")
            cols = [i for i, n in enumerate(names) if not n.endswith("_SCHEMA")]
            schema = names.index("TABLE_SCHEMA")
            rows = [r for r in rows if r[schema] == database]
            assert rows
            for row in rows:
                for i in cols:
                    v = row[i]
                    assert not (isinstance(v, str) and BACKEND_NAME.match(v)), (table, row)
                    assert not (isinstance(v, str) and LAYERS in v), (table, row)
    _, rows = run(
        enc, "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"
    )
    assert sorted(r[0] for r in rows) == ["customers", "orders", "tags"]
    _, rows = run(
        enc,
        "SELECT DISTINCT data_type FROM information_schema.columns WHERE table_schema = DATABASE()",
    )
    assert not {r[0] for r in rows} & {"binary", "varbinary", "blob"}  # onion types


def test_plain_table_appears_as_the_backend_reports_it(pair, direct, database: str) -> None:
    enc, _ = pair
    with direct.cursor() as cur:
        cur.execute(
            "CREATE TABLE legacy (k INT PRIMARY KEY, v VARCHAR(10) NOT NULL DEFAULT 'x', "
            "w BLOB, KEY (v))"
        )
    for table in ("columns", "tables", "statistics", "key_column_usage", "table_constraints"):
        sql = (
            f"SELECT * FROM information_schema.{table} "
            "WHERE table_schema = DATABASE() AND table_name = 'legacy'"
        )
        got, want = run(enc, sql), run(direct, sql)
        if table == "tables":  # sizes move between the two reads only by time
            got = (got[0], [r[:3] for r in got[1]])
            want = (want[0], [r[:3] for r in want[1]])
        assert got == want and want[1], table


def test_refusals_and_pass_through(pair, encrypted_proxy: ProxyProcess, database: str) -> None:
    enc, _ = pair
    for sql in (
        "SELECT * FROM information_schema.INNODB_SYS_TABLES",
        "SELECT name FROM information_schema.innodb_sys_columns",
        "SELECT table_name FROM information_schema.tables WHERE no_such_fn(table_name) = 1",
        "SELECT t.table_name FROM information_schema.tables t JOIN customers c ON 1 = 1",
        "CREATE TABLE copy AS SELECT * FROM information_schema.columns",
    ):
        with pytest.raises(pymysql.MySQLError) as e:
            run(enc, sql)
        assert e.value.args[0] == 1235, sql
    assert run(enc, "SELECT 1")[1] == [(1,)]  # the connection survives
    # Nothing about tables: the backend answers.
    assert run(
        enc, "SELECT schema_name FROM information_schema.schemata WHERE schema_name = DATABASE()"
    )[1] == [(database,)]
    assert run(enc, "SELECT COUNT(*) > 0 FROM information_schema.processlist")[1] == [(1,)]
    _, rows = run(
        enc,
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = 'mysql' AND table_name = 'user'",
    )
    assert rows == [("user",)]


def test_mysql_connector_prepared_statements(
    pair, encrypted_proxy: ProxyProcess, database: str
) -> None:
    """Another driver, server-side prepared statements (binary rows)."""
    enc, _ = pair
    conn = encrypted_proxy.connector(database)
    try:
        cur = conn.cursor(prepared=True)
        cur.execute(
            "SELECT column_name, ordinal_position, column_type FROM information_schema.columns "
            "WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position",
            ("orders",),
        )
        got = [tuple(r) for r in cur.fetchall()]
        cur.close()
    finally:
        conn.close()
    assert got == [
        ("order_id", 1, "bigint(20)"),
        ("customer_id", 2, "int(11)"),
        ("total", 3, "decimal(12,3)"),
        ("qty", 4, "tinyint(4)"),
        ("note", 5, "varchar(200)"),
    ]


# ---- the rewriter alone (EncryptedRunner: plans executed straight on MariaDB) ---------------


def test_fetch_queries_carry_no_plaintext_name(encrypted: EncryptedRunner) -> None:
    for sql in DDL:
        encrypted.execute(sql)
    secret = ["customers", "orders", "email", "balance", "uq_email", "k_age_born", "customer_id"]
    for sql in (
        DJANGO_DESCRIPTION % ("'utf8mb4_general_ci'", "'customers'"),
        "SELECT * FROM information_schema.statistics WHERE table_name = 'orders' "
        "AND index_name = 'uq_pair'",
        # A plaintext name where a database name goes is not sent either.
        "SELECT * FROM information_schema.columns WHERE table_schema = 'customers'",
        # Nor as a constant of a query about a database without the proxy's tables: its
        # text would go to the server as it is.
        "SELECT * FROM information_schema.tables WHERE table_schema = 'mysql' "
        "AND table_name = 'customers'",
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'mysql' "
        "AND column_name IN ('email', 'x')",
        "SELECT * FROM information_schema.columns WHERE table_schema IN ('email', 'x')",
    ):
        plan = encrypted.plan(sql)
        assert isinstance(plan, Evaluate), sql
        for fetch in plan.fetch:
            assert not any(s in fetch.lower() for s in secret), fetch
        encrypted.execute(sql)
    assert not any(s in q.lower() for q in encrypted.backend_sql for s in secret if "SELECT" in q)


def test_plans(encrypted: EncryptedRunner) -> None:
    # Empty deployment: information_schema passes through as before.
    assert isinstance(encrypted.plan("SELECT * FROM information_schema.columns"), PassThrough)
    encrypted.execute(DDL[1])
    other = "SELECT * FROM information_schema.columns WHERE table_schema = 'mysql'"
    assert isinstance(encrypted.plan(other), PassThrough)  # no table of the proxy's there
    assert isinstance(encrypted.plan("SELECT * FROM information_schema.engines"), PassThrough)
    assert isinstance(encrypted.plan("SELECT @@version"), PassThrough)
    plan = encrypted.plan(
        "SELECT * FROM information_schema.columns WHERE table_schema = DATABASE()"
    )
    assert isinstance(plan, Evaluate) and len(plan.fetch) == 1
    assert encrypted.database in plan.fetch[0]
    with pytest.raises(Unsupported):
        encrypted.plan("SELECT * FROM information_schema.innodb_sys_tables")
    with pytest.raises(Unsupported):
        encrypted.plan("SELECT lock_table FROM information_schema.innodb_locks")
    for refused in (
        "SELECT /*! STRAIGHT_JOIN */ * FROM information_schema.tables",
        "SELECT * FROM information_schema.columns WHERE ((",  # unparseable: fail closed
        "SELECT 1; SELECT * FROM information_schema.`TABLES`",
        "SELECT table_name FROM information_schema.tables WHERE table_name REGEXP '^o'",
    ):
        with pytest.raises(Unsupported):
            encrypted.execute(refused)
    # Unqualified, with information_schema as the current database.
    plan = encrypted.rewriter.plan(
        "SELECT table_name FROM tables WHERE table_schema = 'x'",
        schema=encrypted.schema,
        crypto=encrypted.crypto,
        database="information_schema",
    )
    assert isinstance(plan, PassThrough)  # a database without the proxy's tables
    with pytest.raises(Unsupported):  # unparseable, by its bare name there: fail closed
        encrypted.rewriter.plan(
            "SELECT * FROM columns WHERE ((",
            schema=encrypted.schema,
            crypto=encrypted.crypto,
            database="information_schema",
        )
    # The same shape with another constant: that pass-through was not cached for the shape.
    plan = encrypted.rewriter.plan(
        f"SELECT table_name FROM tables WHERE table_schema = '{encrypted.database}'",
        schema=encrypted.schema,
        crypto=encrypted.crypto,
        database="information_schema",
    )
    assert isinstance(plan, Evaluate)
    # Evaluated in the proxy: LIKE and ORDER BY case-insensitive, `=` on names not, aliases
    # and columns named as written.
    rows = encrypted.execute(
        "SELECT Column_Name AS Col, ordinal_position FROM INFORMATION_SCHEMA.Columns "
        "WHERE TABLE_SCHEMA = database() AND table_name LIKE 'ORD%' ORDER BY column_name DESC"
    )
    assert [r[0] for r in rows] == ["total", "qty", "order_id", "note", "customer_id"]
    assert encrypted.execute(
        "SELECT COUNT(*) FROM information_schema.columns WHERE table_name = 'ORDERS'"
    ) == [(0,)]


def test_show_index_matches_plaintext_mariadb(pair) -> None:
    """Django's get_constraints ends with SHOW INDEX (answered from the schema: Cardinality
    NULL, not compared)."""
    enc, plain = pair
    for table in ("customers", "orders", "tags"):
        sql = f"SHOW INDEX FROM `{table}`"
        names_e, rows_e = run(enc, sql)
        names_p, rows_p = run(plain, sql)
        assert names_e == names_p
        assert [r[:6] + r[7:] for r in rows_e] == [r[:6] + r[7:] for r in rows_p], table
        assert all(r[6] is None for r in rows_e)


def test_show_table_status_shows_plaintext_names(pair, database: str) -> None:
    """SHOW TABLE STATUS (GUI tools): the backend's rows under the plaintext names, the
    proxy's own table hidden, LIKE applied in the proxy; sizes are the onion tables'."""
    enc, plain = pair
    for sql in ("SHOW TABLE STATUS", f"SHOW TABLE STATUS FROM `{database}` LIKE 'o%'"):
        names_e, rows_e = run(enc, sql)
        names_p, rows_p = run(plain, sql.replace(f"FROM `{database}` ", ""))
        assert names_e == names_p
        keep = [names_p.index(n) for n in ("Name", "Engine", "Version", "Row_format")]
        keep += [names_p.index(n) for n in ("Collation", "Comment", "Temporary")]
        assert [[r[i] for i in keep] for r in rows_e] == [[r[i] for i in keep] for r in rows_p]
    assert [r[0] for r in run(enc, "SHOW TABLE STATUS")[1]] == ["customers", "orders", "tags"]
    with pytest.raises(pymysql.MySQLError) as e:
        run(enc, "SHOW TABLE STATUS WHERE Name = 'orders'")
    assert e.value.args[0] == 1235
