"""Rewriter bugs the live-proxy tests found, each against plaintext MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pymysql
import pytest
import sqlglot
from pymysql.constants import CLIENT

from proxy.devbackend import DevBackend
from proxy.rewrite.resolve import Ctx
from proxy.rewrite.select import select
from tests.rewrite_support import (
    DryRunner,
    EncryptedRunner,
    connect,
    encrypted_outcome,
    extra_database,
    plain_outcome,
)

DDL = (
    "CREATE TABLE n (id INT AUTO_INCREMENT PRIMARY KEY, u SMALLINT UNSIGNED, a INT, d DECIMAL(8,2))"
)


@pytest.fixture
def both(backend: DevBackend, database: str) -> Iterator[tuple[pymysql.Connection, Any]]:
    plain = connect(backend, database, client_flag=CLIENT.FOUND_ROWS)
    with extra_database(backend) as name:
        runner = EncryptedRunner(backend, name)
        try:
            yield plain, runner
        finally:
            runner.close()
            plain.close()


def _same(plain: pymysql.Connection, runner: EncryptedRunner, sql: str) -> object:
    with plain.cursor() as cur:
        expected = plain_outcome(cur, sql)
    got = encrypted_outcome(runner, sql)
    assert (sql, got) == (sql, expected)
    return got


def test_increment_delta_is_exact_and_not_range_checked(both) -> None:
    """`u = u - 1` on an UNSIGNED column was refused (the delta -1 was range-checked as a
    stored value); `d = d + 1.255` was rounded to 1.26 before adding, not after."""
    plain, runner = both
    for sql in [
        DDL,
        "INSERT INTO n (u, a, d) VALUES (5, -3, -5.00), (NULL, 1, 1.00)",
        "UPDATE n SET u = u - 1 WHERE id = 1",
        "UPDATE n SET u = u + 65530 WHERE id = 1",
        "UPDATE n SET d = d + 1.255",
        "UPDATE n SET a = a + 1.5",
        "UPDATE n SET a = a - 3000000000 WHERE id = 2",  # the sum is out of range: 1264
        "UPDATE n SET a = a + 2147483640 WHERE id = 1",  # the delta is not
    ]:
        _same(plain, runner, sql)
    assert _same(plain, runner, "SELECT u, a, d FROM n ORDER BY id") == [
        (65534, 2147483638, Decimal("-3.75")),
        (None, 3, Decimal("2.26")),
    ]


def test_result_names_as_written() -> None:
    """MariaDB names a result column as the select list writes it: `A` for a column declared
    `a`, `count( d )` for that call (given the statement's text)."""
    dry = DryRunner()
    dry.plan("CREATE TABLE r (a INT, d DECIMAL(8,2), `p(q` INT)")

    def names(sql: str, text: str) -> list[str]:
        ctx = Ctx(dry.schema, dry.database, dry.crypto, {}, sql=text)
        template = select(sqlglot.parse_one(sql, read="mysql"), ctx=ctx)
        assert template.decoder is not None
        return [c.name for c in template.decoder.columns]

    sql = "SELECT A, x.`a`, x.A AS `Q`, d FROM r AS x"
    assert names(sql, "") == ["A", "a", "Q", "d"]
    sql = "SELECT count( `d` ) , Sum(d), MIN(x.A), COUNT(*), COUNT(DISTINCT a) FROM r x"
    want = ["count( `d` )", "Sum(d)", "MIN(x.A)", "COUNT(*)", "COUNT(DISTINCT a)"]
    assert names(sql, sql) == want
    sql = "SELECT COUNT(`p(q`), MAX( `p(q` ) FROM r"  # a parenthesis in a quoted name
    assert names(sql, sql) == ["COUNT(`p(q`)", "MAX( `p(q` )"]
    # Without the text (a caller that does not pass it): sqlglot's spelling.
    assert names("SELECT count( `d` ) , Sum(d) FROM r", "") == ["COUNT(`d`)", "SUM(d)"]


META_DDL = (
    "CREATE TABLE q (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, a INT, b BIGINT NOT NULL, "
    "u SMALLINT UNSIGNED, t TINYINT UNSIGNED, m MEDIUMINT, mu MEDIUMINT UNSIGNED, "
    "bu BIGINT UNSIGNED, d DECIMAL(8,2), du DECIMAL(8,2) UNSIGNED, z DECIMAL(5,0), "
    "dt DATETIME(3), dd DATE, s VARCHAR(10), sb VARCHAR(10) COLLATE utf8mb4_bin, "
    "c CHAR(5) NOT NULL DEFAULT '', tx TEXT, p INT COMMENT 'cryptdb: plain', "
    "UNIQUE KEY ua (a), KEY kdt (dt, m))"
)
META_QUERIES = [
    "SELECT * FROM q",
    "SELECT id, a AS z1, x.b, x.du, x.z FROM q AS x",
    "SELECT MIN(id), MAX(b), MIN(d), MAX(dt), MIN(u), MAX(dd), MIN(p), MAX(du) FROM q",
    "SELECT SUM(a), SUM(b), SUM(u), SUM(t), SUM(m), SUM(mu), SUM(bu), SUM(d), SUM(du), SUM(z), "
    "SUM(p) FROM q",
    "SELECT AVG(a), AVG(t), AVG(bu), AVG(du), AVG(m), AVG(mu), AVG(z), AVG(p) FROM q",
    "SELECT COUNT(*), COUNT(a), COUNT(DISTINCT b) FROM q",
]


def test_result_metadata_is_mariadbs(both) -> None:
    """Result column definitions as MariaDB sends them for the plaintext table: lengths of
    unsigned and DECIMAL(p, 0) columns, SUM / AVG precision, MIN / MAX nullable and without
    a table, key flags, BINARY for binary collations (charset: the utf8mb4 results)."""
    plain, runner = both
    with plain.cursor() as cur:
        cur.execute("SET NAMES utf8mb4")
        cur.execute(META_DDL)
        runner.execute(META_DDL)
        for sql in META_QUERIES:
            cur.execute(sql)
            want = [
                (f.name, f.table_name, f.org_table, f.org_name, f.type_code, f.length, f.flags,
                 f.scale, f.charsetnr, bool(f.db))
                for f in cur._result.fields
            ]  # fmt: skip
            runner.execute(sql)  # peels what it needs
            plan = runner.plan(sql)
            got = [
                (d.name.decode(), d.table.decode(), d.org_table.decode(), d.org_name.decode(),
                 d.type, d.length, d.flags, d.decimals, d.charset, bool(d.schema))
                for d in plan.decoder.definitions()
            ]  # fmt: skip
            assert got == want, sql


def test_decimal_unsigned_keeps_its_range(both) -> None:
    """DECIMAL UNSIGNED was stored as signed: -1 went in, `du - 5` went below zero."""
    plain, runner = both
    for sql in [
        "CREATE TABLE v (id INT AUTO_INCREMENT PRIMARY KEY, du DECIMAL(6,2) UNSIGNED)",
        "INSERT INTO v (du) VALUES (1.5)",
        "INSERT INTO v (du) VALUES (-1)",
        "UPDATE v SET du = du - 5",
        "UPDATE v SET du = du - 1",
        "SELECT du FROM v",
    ]:
        _same(plain, runner, sql)


def test_sum_and_avg_over_few_rows_are_computed_in_the_proxy(both) -> None:
    """Ungrouped SUM / AVG over at most SMALL_ROWS rows: the rows' Eq values are decrypted
    and added in the proxy (no Paillier decryption); over more rows, cryptdb_hom_sum. Both
    give MariaDB's answer, NULLs, empty ranges and DECIMAL scales included."""
    from proxy.rewrite.plan import SMALL_ROWS

    plain, runner = both
    n = SMALL_ROWS + 40
    rows = ", ".join(
        f"({i % 7 if i % 11 else 'NULL'}, {i - 300}, {(i * 37) % 1000 - 500}.{i % 100:02d})"
        for i in range(1, n + 1)
    )
    for sql in [DDL, f"INSERT INTO n (u, a, d) VALUES {rows}"]:
        _same(plain, runner, sql)
    queries = {
        "SELECT SUM(a), AVG(d), COUNT(*), COUNT(u), AVG(u) FROM n WHERE id BETWEEN 5 AND 104": 1,
        "SELECT SUM(u), SUM(d) FROM n WHERE id > 5000": 1,  # no rows: NULLs
        "SELECT AVG(a) FROM n WHERE id IN (3, 4, 11, 22)": 1,
        "SELECT SUM(d) FROM n WHERE id < 30 FOR UPDATE": 1,
        f"SELECT SUM(a), AVG(d), COUNT(*) FROM n WHERE id <= {SMALL_ROWS}": 1,
        "SELECT SUM(a), AVG(d) FROM n": 2,  # more rows than SMALL_ROWS: HOM
    }
    for sql, statements in queries.items():
        before = len(runner.backend_sql)
        _same(plain, runner, sql)
        sent = runner.backend_sql[before:]
        assert len(sent) == statements, (sql, sent)
        assert ("cryptdb_hom_sum" in sent[-1]) == (statements == 2), (sql, sent)


UPSERT_DDL = (
    "CREATE TABLE u (id INT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(40) COLLATE utf8mb4_bin "
    "NOT NULL, n INT, note VARCHAR(20), hits INT COMMENT 'cryptdb: plain', UNIQUE (email))"
)


def test_insert_ignore_on_duplicate_key_update_and_replace(both) -> None:
    """Duplicates found by the server on the encrypted UNIQUE column's DET index: INSERT
    IGNORE skips them, ON DUPLICATE KEY UPDATE copies VALUES(c) onion by onion, sets
    constants under fresh IVs and plain columns as written; equality still finds the rows."""
    plain, runner = both
    script = [
        UPSERT_DDL,
        "INSERT INTO u (email, n, note, hits) VALUES ('a@x', 1, 'one', 0), ('b@x', 2, NULL, 0)",
        "INSERT IGNORE INTO u (email, n) VALUES ('a@x', 10), ('c@x', 3)",
        "INSERT INTO u (email, n, note, hits) VALUES ('b@x', 20, 'twenty', 0), ('d@x', 4, 'd', 0)"
        " ON DUPLICATE KEY UPDATE n = VALUES(n), note = VALUES(note), hits = hits + 1",
        "INSERT INTO u (email, n) VALUES ('a@x', 5) ON DUPLICATE KEY UPDATE note = 'again', "
        "n = NULL, hits = 7",
        "SELECT id, email, n, note, hits FROM u ORDER BY id",
        "SELECT id FROM u WHERE email = 'b@x' AND n = 20 AND note = 'twenty'",
        "SELECT id FROM u WHERE note = 'again' AND n IS NULL",
        "SELECT COUNT(*), SUM(n) FROM u",
        "INSERT INTO u (email) VALUES ('a@x')",  # still a duplicate: 1062 on both sides
    ]
    for sql in script:
        _same(plain, runner, sql)
    # Setting a row to its own values: MariaDB counts 1 (found, unchanged); here the copied
    # onions come with fresh IVs, so the row changes and counts 2, as an UPDATE of an
    # encrypted column counts every matched row (docs/rewrite.md, "Affected rows").
    same_row = (
        "INSERT INTO u (email, n) VALUES ('a@x', 6) ON DUPLICATE KEY UPDATE email = VALUES(email)"
    )
    with plain.cursor() as cur:
        assert plain_outcome(cur, same_row) == 1
    assert encrypted_outcome(runner, same_row) == 2
    _same(plain, runner, "SELECT id, email, n, note, hits FROM u ORDER BY id")
    # REPLACE: the row with the same UNIQUE email is deleted, the new one inserted (2 rows).
    for sql in [
        "REPLACE INTO u (email, n, note, hits) VALUES ('b@x', 99, 'replaced', 1)",
        "REPLACE INTO u (email, n) VALUES ('e@x', 5), ('f@x', 6)",
        "replace   into u (email) values ('g@x')",
        "SELECT email, n, note, hits FROM u ORDER BY email",
        "SELECT id FROM u WHERE note = 'replaced' AND n = 99",
    ]:
        _same(plain, runner, sql)
    for sql in [
        "INSERT INTO u (email, n) VALUES ('a@x', 1) ON DUPLICATE KEY UPDATE n = n + 1",
        "INSERT INTO u (email, n) VALUES ('a@x', 1) ON DUPLICATE KEY UPDATE note = VALUES(email)",
    ]:
        assert encrypted_outcome(runner, sql) == ("error", 1235), sql


def test_order_by_position_is_planned_per_position(both) -> None:
    """`ORDER BY 1` (Django's form) sorts by that result column; the shape cache must not
    serve ORDER BY 2 the plan made for ORDER BY 1 (same shape, other literal)."""
    plain, runner = both
    for sql in [
        DDL,
        "INSERT INTO n (u, a, d) VALUES (3, 10, 2.00), (1, 30, 1.00), (2, 20, 3.00)",
        "SELECT u AS x, a FROM n ORDER BY 1",
        "SELECT u AS x, a FROM n ORDER BY 2 DESC",
        "SELECT u AS x, a FROM n ORDER BY 1 DESC",
        "SELECT * FROM n WHERE a > 5 ORDER BY 4, 1 LIMIT 2",
        "SELECT * FROM n WHERE a > 15 ORDER BY 3, 1 LIMIT 2",
        "SELECT u, COUNT(*) FROM n GROUP BY u ORDER BY 1 DESC",
        "SELECT a FROM n ORDER BY 2",  # 1054, as MariaDB
    ]:
        _same(plain, runner, sql)


def test_columns_of_a_table_grouped_by_its_primary_key(both) -> None:
    """`SELECT name, COUNT(b.x) ... GROUP BY a.id` (Django's annotate()): a's columns depend
    on its primary key, so MariaDB accepts them ungrouped; so does the proxy."""
    plain, runner = both
    for sql in [
        DDL,
        "INSERT INTO n (u, a, d) VALUES (3, 10, 2.00), (1, 30, 1.00), (2, 10, 3.00)",
        "SELECT n.a, n.d, COUNT(m.id) FROM n LEFT JOIN n AS m ON m.id = n.id "
        "GROUP BY n.id ORDER BY 1, 2",
        "SELECT a, u FROM n GROUP BY id ORDER BY 2",
    ]:
        _same(plain, runner, sql)


def test_like_binary_is_byte_exact(both) -> None:
    """`LIKE BINARY p` (Django's contains / startswith / endswith): a byte-wise match, so
    the proxy evaluates it exactly on any collation: `_` is one byte of UTF-8 ('é' is two),
    case matters, and '%word%' is a substring, not the Search onion's word match."""
    plain, runner = both
    for sql in [
        "CREATE TABLE lb (id INT PRIMARY KEY, b VARCHAR(20) COLLATE utf8mb4_bin, "
        "c VARCHAR(20), p VARCHAR(20) COMMENT 'cryptdb: plain')",
        "INSERT INTO lb VALUES (1, 'abc', 'abc', 'abc'), (2, 'Abc', 'ABC', 'Abc'), "
        "(3, 'xaby', 'xaBy', 'xaby'), (4, 'éa', 'éa', 'éa'), (5, 'a_b', 'a_b', 'a_b'), "
        "(6, NULL, NULL, NULL)",
        "SELECT id FROM lb WHERE b LIKE BINARY 'a%' ORDER BY id",
        "SELECT id FROM lb WHERE c LIKE BINARY 'a%' ORDER BY id",
        "SELECT id FROM lb WHERE c LIKE BINARY '%ab%' ORDER BY id",
        "SELECT id FROM lb WHERE b LIKE BINARY '%b' ORDER BY id",
        "SELECT id FROM lb WHERE c LIKE BINARY '_a' ORDER BY id",
        "SELECT id FROM lb WHERE c LIKE BINARY '__a' ORDER BY id",
        "SELECT id FROM lb WHERE b LIKE BINARY 'a\\\\_%' ORDER BY id",
        "SELECT id FROM lb WHERE b NOT LIKE BINARY '%b%' ORDER BY id",
        "SELECT id FROM lb WHERE p LIKE BINARY 'A%' ORDER BY id",
        "SELECT id FROM lb WHERE c LIKE BINARY 'x%' AND id > 1",
        "UPDATE lb SET p = 'hit' WHERE c LIKE BINARY '%B%'",
        "DELETE FROM lb WHERE c LIKE BINARY 'é%'",
        "SELECT id, p FROM lb ORDER BY id",
    ]:
        _same(plain, runner, sql)


def test_group_by_position(both) -> None:
    """`GROUP BY 1` (Django's values().annotate()), cached per position like ORDER BY 1."""
    plain, runner = both
    for sql in [
        DDL,
        "INSERT INTO n (u, a, d) VALUES (3, 10, 2.00), (1, 10, 1.00), (3, 20, 3.00)",
        "SELECT a AS x, SUM(d) AS s FROM n GROUP BY 1 ORDER BY 1",
        "SELECT u, a, COUNT(*) FROM n GROUP BY 2, 1 ORDER BY 2, 1",
        "SELECT u, a, COUNT(*) FROM n GROUP BY 1, 2 ORDER BY 1, 2",
        "SELECT u, COUNT(*) FROM n GROUP BY 3",  # 1054, as MariaDB
    ]:
        _same(plain, runner, sql)


def test_correlated_exists_tied_by_one_equality(both) -> None:
    """[NOT] EXISTS (SELECT ... WHERE inner.c = outer.c AND ...) (Django's Exists(OuterRef)):
    decided as an IN by the proxy, exactly, NULLs included, under NOT and OR too."""
    plain, runner = both
    for sql in [
        DDL,
        "CREATE TABLE m (id INT AUTO_INCREMENT PRIMARY KEY, nid INT COMMENT 'cryptdb: plain', "
        "k INT, v VARCHAR(9))",
        "INSERT INTO n (u, a, d) VALUES (3, 10, 2.00), (1, 30, 1.00), (NULL, NULL, 3.00), "
        "(2, 20, 4.00)",
        "INSERT INTO m (nid, k, v) VALUES (1, 10, 'x'), (1, 20, 'y'), (2, NULL, 'z'), "
        "(NULL, 30, 'w'), (9, 10, 'q')",
        "SELECT id FROM n WHERE EXISTS (SELECT 1 AS a FROM m U0 WHERE U0.nid = (n.id) LIMIT 1) "
        "ORDER BY id",
        "SELECT id FROM n WHERE NOT EXISTS (SELECT * FROM m WHERE m.nid = n.id) ORDER BY id",
        "SELECT id FROM n WHERE EXISTS (SELECT 1 FROM m WHERE n.a = m.k AND m.v <> 'q') "
        "ORDER BY id",
        "SELECT id FROM n WHERE NOT EXISTS (SELECT 1 FROM m WHERE m.k = n.a) ORDER BY id",
        "SELECT id FROM n WHERE u = 2 OR EXISTS (SELECT 1 FROM m WHERE m.k = n.a AND m.v = 'x') "
        "ORDER BY id",
        "UPDATE n SET d = 9 WHERE EXISTS (SELECT 1 FROM m WHERE m.k = n.a)",
        "DELETE FROM m WHERE NOT EXISTS (SELECT 1 FROM n WHERE n.id = m.nid)",
        "SELECT id, d FROM n ORDER BY id",
        "SELECT id, nid FROM m ORDER BY id",
    ]:
        _same(plain, runner, sql)

