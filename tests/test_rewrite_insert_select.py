"""INSERT ... SELECT (proxy/rewrite/insert_select.py): the SELECT decided by the proxy, its
rows inserted through the ordinary rewrite; the same script on a plaintext copy, through the
rewriter and through the live proxy, gives the same tables. Encrypted values never land in a
plain column, and never reach the server in plaintext."""

from __future__ import annotations

from typing import Any

import pymysql
import pytest
from pymysql.constants import CLIENT

from proxy.devbackend import DevBackend
from proxy.rewrite.insert_select import MAX_ROWS
from tests.conftest import ProxyProcess
from tests.rewrite_support import (
    EncryptedRunner,
    encrypted_outcome,
    extra_database,
    plain_outcome,
)

DDL = [
    "CREATE TABLE src (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(30), n INT, "
    "d DATE, price DECIMAL(8,2), tag VARCHAR(10) COMMENT 'cryptdb: plain')",
    "CREATE TABLE dst (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(30), n INT, "
    "d DATE, price DECIMAL(8,2), tag VARCHAR(10) COMMENT 'cryptdb: plain')",
    "CREATE TABLE totals (k VARCHAR(30) PRIMARY KEY, c INT, s DECIMAL(12,2))",
]
FILL = (
    "INSERT INTO src (name, n, d, price, tag) VALUES ('alpha', 1, '2024-01-02', 1.50, 'x'), "
    "('beta', 2, NULL, 2.25, 'y'), ('gamma', NULL, '2023-12-31', NULL, 'x'), "
    "('alpha', 4, '2024-05-06', -3.00, NULL), ('o''brien', 5, '2020-02-29', 0.00, 'z')"
)
SCRIPT = [
    "INSERT INTO dst (name, n, d, price, tag) SELECT name, n, d, price, tag FROM src",
    "INSERT INTO dst SELECT * FROM src WHERE n > 3",  # the ids collide: 1062 on both sides
    "INSERT INTO dst (name, n, d, price, tag) SELECT name, n, d, price, tag FROM src "
    "WHERE name = 'alpha' ORDER BY n DESC LIMIT 1",
    "INSERT INTO dst (name, n) SELECT name, n FROM src WHERE n IN (SELECT n FROM dst "
    "WHERE name = 'beta')",
    "INSERT INTO dst (name, n) SELECT name, n FROM src WHERE id > 100",  # no rows
    "INSERT INTO totals (k, c, s) SELECT name, COUNT(*), SUM(price) FROM src GROUP BY name",
    "INSERT INTO totals (k, c) SELECT name, n FROM src WHERE name = 'beta' "
    "ON DUPLICATE KEY UPDATE c = VALUES(c)",
    "INSERT INTO dst (name, tag) SELECT name, tag FROM src WHERE tag = 'x' "
    "UNION ALL SELECT name, tag FROM src WHERE n > 3",
    # Without the ids: MariaDB's INSERT ... SELECT reserves AUTO_INCREMENT values in batches
    # (innodb_autoinc_lock_mode 1) and leaves gaps, the proxy's multi-row VALUES does not.
    "SELECT name, n, d, price, tag FROM dst ORDER BY id",
    "SELECT k, c, s FROM totals ORDER BY k",
    "SELECT COUNT(*) FROM dst WHERE name = 'alpha' AND d = '2024-01-02'",
]
REFUSED = [
    "INSERT INTO dst (tag) SELECT name FROM src",  # encrypted -> plain column
    "INSERT INTO dst (name, n, d, price, id) SELECT name, n, d, price, n FROM src",
    "INSERT INTO dst (id, name) SELECT n, name FROM src",
]


def _script(run: Any) -> list[object]:
    return [run(sql) for sql in [*DDL, FILL, *SCRIPT]]


def _run_on(conn: pymysql.Connection, plaintext: bool = True):  # -> callable
    """Statements on a connection (the policies dropped for the plaintext copy)."""

    def run(sql: str) -> object:
        with conn.cursor() as cur:
            return plain_outcome(
                cur, sql.replace(" COMMENT 'cryptdb: plain'", "") if plaintext else sql
            )

    return run


def test_insert_select_through_the_rewriter(plain, encrypted: EncryptedRunner) -> None:
    expected = _script(_run_on(plain))
    got = _script(lambda sql: encrypted_outcome(encrypted, sql))
    for sql, g, e in zip([*DDL, FILL, *SCRIPT], got, expected, strict=True):
        assert (sql, g) == (sql, e)
    for sql in REFUSED:
        assert encrypted_outcome(encrypted, sql) == ("error", 1235), sql


def test_insert_select_through_the_live_proxy(
    plain, backend: DevBackend, encrypted_proxy: ProxyProcess
) -> None:
    expected = _script(_run_on(plain))
    with extra_database(backend, "insel") as name:
        conn = encrypted_proxy.connect(
            name, autocommit=True, charset="utf8mb4", client_flag=CLIENT.FOUND_ROWS
        )
        try:
            got = _script(_run_on(conn, plaintext=False))
            assert got == expected
            with conn.cursor() as cur:  # in the client's own transaction, rolled back
                cur.execute("BEGIN")
                cur.execute("INSERT INTO dst (name) SELECT name FROM src")
                cur.execute("ROLLBACK")
                cur.execute("SELECT COUNT(*) FROM dst")
                dst_rows = expected[-3]  # the script's SELECT of dst
                assert isinstance(dst_rows, list) and cur.fetchall() == ((len(dst_rows),),)
            for sql in REFUSED:
                with pytest.raises(pymysql.err.MySQLError) as e, conn.cursor() as cur:
                    cur.execute(sql)
                assert e.value.args[0] == 1235, sql
            # No plaintext text value of the script reached a backend table.
            with backend.admin() as a, a.cursor() as cur:
                cur.execute(f"SHOW TABLES FROM `{name}`")
                for (t,) in cur.fetchall():
                    cur.execute(f"SELECT * FROM `{name}`.`{t}`")
                    blob = repr(cur.fetchall())
                    for needle in ("alpha", "gamma", "brien", "2024-01-02"):
                        assert needle not in blob, (t, needle)
        finally:
            conn.close()


def test_outer_statements_are_not_kept_in_the_shape_cache(encrypted: EncryptedRunner) -> None:
    """Each row count makes another INSERT ... VALUES shape: planned, never cached."""
    encrypted.execute("CREATE TABLE a (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
    encrypted.execute("CREATE TABLE b (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
    encrypted.execute("INSERT INTO a (v) VALUES (1), (2), (3)")
    for n in (1, 1):  # the schema settles (peels: new tokens), the inner shapes get cached
        encrypted.execute(f"INSERT INTO b (v) SELECT v FROM a WHERE id <= {n}")
        encrypted.execute(f"SELECT id FROM b WHERE v IN (SELECT v FROM a WHERE id <= {n})")
    before = len(encrypted.rewriter._cache)
    for n in range(1, 4):
        encrypted.execute(f"INSERT INTO b (v) SELECT v FROM a WHERE id <= {n}")
        encrypted.execute(f"SELECT id FROM b WHERE v IN (SELECT v FROM a WHERE id <= {n})")
    assert len(encrypted.rewriter._cache) == before  # only the inner SELECTs' shapes, kept
    assert encrypted.execute("SELECT COUNT(*) FROM b") == [(8,)]


def test_too_many_rows_are_refused(encrypted: EncryptedRunner) -> None:
    encrypted.execute("CREATE TABLE big (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
    encrypted.execute("CREATE TABLE copy (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
    for _ in range((MAX_ROWS + 1000) // 1000):
        encrypted.execute("INSERT INTO big (v) VALUES " + ", ".join(["(7)"] * 1000))
    assert encrypted_outcome(encrypted, "INSERT INTO copy (v) SELECT v FROM big") == (
        "error",
        1235,
    )
    assert encrypted.execute("SELECT COUNT(*) FROM copy") == [(0,)]
