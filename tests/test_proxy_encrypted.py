"""Encrypted tables through the live proxy: DDL, DML, peels, audit, refusals, real MariaDB."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import mysql.connector
import pymysql
import pytest

from proxy.devbackend import DEMO_PASSWORD, DEMO_USER
from tests.conftest import ProxyProcess


@pytest.fixture
def enc(encrypted_proxy: ProxyProcess, database: str):
    conn = encrypted_proxy.connect(database, autocommit=True, charset="utf8mb4")
    yield conn
    conn.close()


def rows(conn: pymysql.Connection, sql: str, args: object = None) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def audit(p: ProxyProcess) -> list[dict]:
    path = p.keystore.with_name(p.keystore.name + ".audit")  # type: ignore[attr-defined]
    return [json.loads(line) for line in path.read_text().splitlines()]


def make_table(enc: pymysql.Connection) -> None:
    rows(
        enc,
        "CREATE TABLE t (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
        "k INT NOT NULL, c CHAR(20), d DECIMAL(10,2))",
    )
    rows(
        enc,
        "INSERT INTO t (k, c, d) VALUES (1, 'alpha', 1.50), (2, 'beta', NULL), (3, 'gamma', -2.25)",
    )


def test_round_trip_with_peels_and_audit(enc, direct, encrypted_proxy, database) -> None:
    make_table(enc)
    assert rows(enc, "SELECT id, k, c, d FROM t ORDER BY id") == [
        (1, 1, "alpha", Decimal("1.50")),
        (2, 2, "beta", None),
        (3, 3, "gamma", Decimal("-2.25")),
    ]
    assert rows(enc, "SELECT c FROM t WHERE k = 2") == [("beta",)]
    got = rows(enc, "SELECT c FROM t WHERE k BETWEEN 2 AND 3 ORDER BY c DESC")
    assert got == [("gamma",), ("beta",)]
    assert rows(enc, "SELECT SUM(k), COUNT(*) FROM t") == [(Decimal(6), 3)]
    rows(enc, "UPDATE t SET k = k + 10 WHERE id = 1")
    assert rows(enc, "SELECT k FROM t WHERE id = 1") == [(11,)]
    rows(enc, "DELETE FROM t WHERE c = 'beta'")
    assert rows(enc, "SELECT COUNT(*) FROM t") == [(2,)]
    # The server holds an anonymized table; the proxy shows the plaintext one.
    assert rows(enc, "SHOW TABLES") == [("t",)]
    backend_tables = {r[0] for r in rows(direct, "SHOW TABLES")}
    assert "t" not in backend_tables and any(n.startswith("t_") for n in backend_tables)
    # Each peel once, audited: k's Eq onion (=), k's Ord onion (BETWEEN), c's Eq (=).
    mine = [e for e in audit(encrypted_proxy) if e["database"] == database]
    assert {(e["column"], e["onion"], e["from"], e["to"]) for e in mine} == {
        ("k", "eq", "RND", "DET"),
        ("k", "ord", "RND", "OPE"),
        ("c", "eq", "RND", "DET"),
    }
    assert all(e["user"] == "demo" and e["outcome"] == "peeled" for e in mine)
    rows(enc, "SELECT c FROM t WHERE k = 3")
    assert len([e for e in audit(encrypted_proxy) if e["database"] == database]) == 3


def test_refusals_are_errors_and_change_nothing(enc, encrypted_proxy, database) -> None:
    rows(enc, "CREATE TABLE p (a INT COMMENT 'cryptdb: min=DET', b VARCHAR(10))")
    rows(enc, "INSERT INTO p VALUES (1, 'x'), (2, 'y')")
    with pytest.raises(pymysql.err.OperationalError) as e:
        rows(enc, "SELECT b FROM p WHERE a < 2")
    assert e.value.args[0] == 7001 and "p.a" in e.value.args[1] and "min=DET" in e.value.args[1]
    with pytest.raises(pymysql.MySQLError) as e:
        rows(enc, "SELECT b FROM p WHERE a IN (SELECT a FROM p AS x WHERE x.b = p.b)")
    assert e.value.args[0] == 1235
    # The connection still works, and nothing was lowered to OPE.
    assert rows(enc, "SELECT b FROM p WHERE a = 2") == [("y",)]
    onions = {(e["column"], e["to"]) for e in audit(encrypted_proxy) if e["database"] == database}
    assert ("a", "OPE") not in onions


def test_session_settings_are_checked(enc) -> None:
    make_table(enc)
    rows(enc, "SET NAMES latin1")
    with pytest.raises(pymysql.MySQLError) as e:
        rows(enc, "SELECT c FROM t")
    assert e.value.args[0] == 7004 and "SET NAMES utf8mb4" in e.value.args[1]
    rows(enc, "SET NAMES utf8mb4")
    rows(enc, "SET sql_mode = 'ANSI_QUOTES'")
    with pytest.raises(pymysql.MySQLError) as e:
        rows(enc, "SELECT c FROM t")
    assert "ANSI_QUOTES" in e.value.args[1]
    rows(enc, "SET sql_mode = DEFAULT")
    assert len(rows(enc, "SELECT c FROM t")) == 3


def test_use_and_init_db_follow_the_current_database(encrypted_proxy, database) -> None:
    conn = encrypted_proxy.connect(None, autocommit=True, charset="utf8mb4")
    try:
        rows(conn, f"USE `{database}`")
        make_table(conn)
        assert rows(conn, "SELECT COUNT(*) FROM t") == [(3,)]
        conn.select_db("mysql")
        with pytest.raises(pymysql.MySQLError):
            rows(conn, "SELECT COUNT(*) FROM t")  # mysql.t does not exist
        conn.select_db(database)
        assert rows(conn, "SELECT COUNT(*) FROM t") == [(3,)]
    finally:
        conn.close()


def test_peel_blocked_by_own_transaction_is_refused(enc, encrypted_proxy, database) -> None:
    make_table(enc)
    enc.begin()
    rows(enc, "INSERT INTO t (k, c) VALUES (4, 'delta')")
    # c's Eq onion must be peeled, and the peel waits on the row this transaction holds:
    # refused after the short lock wait, the transaction itself untouched.
    with pytest.raises(pymysql.MySQLError) as e:
        rows(enc, "SELECT k FROM t WHERE c = 'delta'")
    assert e.value.args[0] == 7004 and "COMMIT or ROLLBACK" in e.value.args[1]
    assert rows(enc, "SELECT COUNT(*) FROM t") == [(4,)]
    enc.rollback()
    assert rows(enc, "SELECT COUNT(*) FROM t WHERE c = 'delta'") == [(0,)]
    assert rows(enc, "SELECT k FROM t WHERE c = 'alpha'") == [(1,)]


def test_transaction_sees_a_peel_made_after_it_began(enc, encrypted_proxy, database) -> None:
    make_table(enc)
    other = encrypted_proxy.connect(database, autocommit=True, charset="utf8mb4")
    try:
        enc.begin()
        assert rows(enc, "SELECT COUNT(*) FROM t") == [(3,)]  # the snapshot is taken here
        assert rows(other, "SELECT k FROM t WHERE c = 'beta'") == [(2,)]  # peels c's Eq
        # This transaction's snapshot holds the RND layer; the proxy reads current rows.
        assert rows(enc, "SELECT k FROM t WHERE c = 'beta'") == [(2,)]
        enc.commit()
    finally:
        other.close()


def test_mariadb_cli_shows_refusals_and_plaintext(enc, encrypted_proxy, database) -> None:
    from tests.test_proxy_clients import mariadb_cli

    rows(enc, "CREATE TABLE p (a INT COMMENT 'cryptdb: min=DET', b VARCHAR(10))")
    rows(enc, "INSERT INTO p VALUES (1, 'x'), (2, 'y')")
    # Without a UTF-8 locale the CLI defaults to latin1: refused, saying what to do.
    r = mariadb_cli(encrypted_proxy, "-D", database, "-e", "SELECT a, b FROM p WHERE a = 2")
    assert r.returncode == 1 and "ERROR 7004" in r.stderr and "SET NAMES utf8mb4" in r.stderr
    utf8 = ("--default-character-set=utf8mb4", "-D", database, "-e")
    r = mariadb_cli(encrypted_proxy, *utf8, "SELECT a, b FROM p WHERE a = 2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["a\tb", "2\ty"]
    r = mariadb_cli(encrypted_proxy, *utf8, "SELECT b FROM p WHERE a < 2")
    assert r.returncode == 1
    assert "ERROR 7001 (HY000)" in r.stderr and "p.a refused by its policy (min=DET)" in r.stderr


def test_broken_keystore_refuses_then_recovers(backend, tmp_path, database) -> None:
    from tests.conftest import LOW_KDF, start_proxy, stop_proxy

    ks_dir = tmp_path / "ks"
    ks_dir.mkdir(mode=0o700)
    p = start_proxy(backend, tmp_path / "p", extra=f"keystore = {ks_dir / 'keystore'}\n" + LOW_KDF)
    try:
        conn = p.connect(database, autocommit=True, charset="utf8mb4")
        make_table(conn)
        good = (ks_dir / "keystore").read_bytes()
        (ks_dir / "keystore").write_bytes(b"garbage" * 40)
        for sql in ("SELECT c FROM t", "SELECT 1"):  # unknown schema: nothing can be planned
            with pytest.raises(pymysql.MySQLError) as e:
                rows(conn, sql)
            assert e.value.args[0] == 7004 and "keystore cannot be read" in e.value.args[1]
        (ks_dir / "keystore").write_bytes(good)
        assert rows(conn, "SELECT c FROM t WHERE k = 1") == [("alpha",)]
        assert "garbage" not in p.log.read_text()
        conn.close()
    finally:
        stop_proxy(p)


def test_prepared_statements_on_encrypted_tables(enc, encrypted_proxy, database) -> None:
    make_table(enc)
    conn = encrypted_proxy.connector(database, charset="utf8mb4")
    try:
        cur = conn.cursor(prepared=True)
        cur.execute("INSERT INTO t (k, c, d) VALUES (?, ?, ?)", (7, "it's ?", Decimal("7.25")))
        conn.commit()
        cur.execute("SELECT id, c, d FROM t WHERE k = ?", (7,))
        assert cur.fetchall() == [(4, "it's ?", Decimal("7.25"))]
        cur.execute("SELECT c FROM t WHERE k BETWEEN ? AND ? ORDER BY c", (2, 7))
        assert cur.fetchall() == [("beta",), ("gamma",), ("it's ?",)]
        cur.execute("SELECT SUM(d) FROM t WHERE k > ?", (0,))
        assert cur.fetchall() == [(Decimal("6.50"),)]
    finally:
        conn.close()
    # The backend saw ciphertext only.
    assert rows(enc, "SELECT COUNT(*) FROM t WHERE c = %s", ("it's ?",)) == [(1,)]


def test_plain_table_of_the_same_name_elsewhere_passes_through(
    enc, encrypted_proxy, backend, database
) -> None:
    from tests.rewrite_support import extra_database

    make_table(enc)
    with extra_database(backend, "plain") as other:
        conn = encrypted_proxy.connect(other, autocommit=True, charset="utf8mb4")
        try:
            with backend.admin() as a, a.cursor() as cur:
                cur.execute(f"CREATE TABLE `{other}`.t (id INT, c VARCHAR(5))")
                cur.execute(f"INSERT INTO `{other}`.t VALUES (1, 'p')")
            assert rows(conn, "SELECT c FROM t WHERE id = 1") == [("p",)]  # plain, elsewhere
            assert rows(conn, f"SELECT c FROM `{database}`.t WHERE k = 1") == [("alpha",)]
            with pytest.raises(pymysql.MySQLError) as e:
                rows(conn, f"HANDLER `{database}`.t OPEN")  # opaque and names it: refused
            assert e.value.args[0] == 1235
        finally:
            conn.close()


def test_upserts_through_the_proxy(enc, direct) -> None:
    """INSERT IGNORE / ON DUPLICATE KEY UPDATE through the live proxy, in autocommit (the
    write guards' own transaction) and in the client's, against the same on MariaDB."""
    ddl = (
        "CREATE TABLE up (id INT AUTO_INCREMENT PRIMARY KEY, k VARCHAR(9) COLLATE utf8mb4_bin "
        "NOT NULL, v INT, UNIQUE (k))"
    )
    script = [
        "INSERT INTO up (k, v) VALUES ('a', 1), ('b', 2)",
        "INSERT IGNORE INTO up (k, v) VALUES ('a', 9), ('c', 3)",
        "BEGIN",
        "INSERT INTO up (k, v) VALUES ('b', 20) ON DUPLICATE KEY UPDATE v = VALUES(v)",
        "INSERT INTO up (k, v) VALUES ('d', 4) ON DUPLICATE KEY UPDATE v = 0",
        "COMMIT",
    ]
    with direct.cursor() as cur:
        cur.execute(ddl.replace("up (", "up_plain (", 1))
        for sql in script:
            cur.execute(sql.replace("INTO up ", "INTO up_plain "))
        cur.execute("SELECT id, k, v FROM up_plain ORDER BY id")
        expected = list(cur.fetchall())
    rows(enc, ddl)
    for sql in script:
        rows(enc, sql)
    assert rows(enc, "SELECT id, k, v FROM up ORDER BY id") == expected
    assert rows(enc, "SELECT v FROM up WHERE k = 'b'") == [(20,)]


def test_statement_text_never_reaches_the_proxy_log(enc, encrypted_proxy) -> None:
    """sqlglot warns with the whole statement when it falls back to a Command (REPLACE,
    SHOW KEYS, ...): the proxy silences it, so no client value reaches a log line."""
    make_table(enc)
    secret = "zq-secret-value-81723"
    for sql in [
        f"/* a comment first */ REPLACE INTO t (k, c) VALUES (1, '{secret}')",
        f"SELECT k FROM t WHERE c = '{secret}' GARBAGE (",
        f"SHOW KEYS FROM t WHERE Key_name = '{secret}'",
    ]:
        with pytest.raises(pymysql.err.MySQLError):
            rows(enc, sql)
    time.sleep(0.2)  # the log is written by another process
    assert secret not in encrypted_proxy.log.read_text()


def test_replace_through_the_proxy(enc) -> None:
    rows(enc, "CREATE TABLE rp (id INT PRIMARY KEY, c VARCHAR(9))")
    rows(enc, "INSERT INTO rp VALUES (1, 'one'), (2, 'two')")
    with enc.cursor() as cur:
        assert cur.execute("REPLACE INTO rp VALUES (2, 'deux'), (3, 'trois')") == 3
    assert rows(enc, "SELECT id, c FROM rp ORDER BY id") == [(1, "one"), (2, "deux"), (3, "trois")]
    assert rows(enc, "SELECT id FROM rp WHERE c = 'deux'") == [(2,)]


def test_plain_columns_of_other_types_keep_their_metadata(
    enc, direct, encrypted_proxy, backend, database
) -> None:
    """Plain columns of types the onions do not hold (FLOAT, VARBINARY, TIME, ...) in an
    encrypted table: values and column definitions as MariaDB sends them for the same table
    unencrypted (the backend's own definition, renamed), in the text and binary protocols."""
    plain = " COMMENT 'cryptdb: plain'"
    cols = [
        ("f", "FLOAT"),
        ("g", "DOUBLE NOT NULL DEFAULT 0"),
        ("b", "VARBINARY(8)"),
        ("tm", "TIME(3)"),
        ("y", "YEAR"),
        ("e", "ENUM('x','yy')"),
        ("ts", "TIMESTAMP NULL"),
        ("bt", "BIT(5)"),
    ]
    body = ", ".join(f"{n} {t}" for n, t in cols)
    enc_body = ", ".join(f"{n} {t}{plain}" for n, t in cols)
    insert = (
        "INSERT INTO {} (id, s, f, g, b, tm, y, e, ts, bt) VALUES "
        "(1, 'one', 1.5, -2.25, x'00ff10', '-01:02:03.125', 2024, 'yy', '2024-01-02 03:04:05', "
        "b'10101'), (2, NULL, NULL, 3e10, NULL, NULL, NULL, NULL, NULL, NULL)"
    )
    rows(direct, f"CREATE TABLE o_plain (id INT PRIMARY KEY, s VARCHAR(9), {body})")
    rows(direct, insert.format("o_plain"))
    rows(enc, f"CREATE TABLE o (id INT PRIMARY KEY, s VARCHAR(9), {enc_body})")
    rows(enc, insert.format("o"))
    names = "id, s, f, g, b, tm, y, e, ts, bt"

    def described(conn: pymysql.Connection, table: str) -> tuple[list, list]:
        with conn.cursor() as cur:
            cur.execute(f"SELECT {names} FROM {table} ORDER BY id")
            got = list(cur.fetchall())
            fields = [
                (f.name, f.type_code, f.length, f.scale, f.flags, f.charsetnr, f.org_name)
                for f in cur._result.fields
            ]
        return got, fields

    assert described(enc, "o") == described(direct, "o_plain")
    for where in (
        "b = x'00ff10'",
        "f > 1.0",
        "g < 0",
        "tm < '00:00:00'",
        "e = 'yy'",
        "y = 2024",
        "ts >= '2024-01-01'",
        "bt = b'10101'",
        "f IS NULL",
    ):
        assert rows(enc, f"SELECT id FROM o WHERE {where}") == rows(
            direct, f"SELECT id FROM o_plain WHERE {where}"
        ), where
    # Filtering on the encrypted column keeps the plain columns' values intact.
    assert rows(enc, "SELECT b, bt FROM o WHERE s = 'one'") == [(b"\x00\xff\x10", b"\x15")]
    # Binary rows (prepared statements) are made from the relayed types too. YEAR last:
    # mysql-connector's pure binary parser misreads any column after a YEAR, even direct.
    binary = names.replace(", y,", ",") + ", y"
    a = mysql.connector.connect(
        host="127.0.0.1", port=backend.port, user=DEMO_USER, password=DEMO_PASSWORD,
        database=database, use_pure=True, ssl_disabled=True,
    )  # fmt: skip
    b = encrypted_proxy.connector(database, charset="utf8mb4")
    try:
        for conn, table in ((a, "o_plain"), (b, "o")):
            cur = conn.cursor(prepared=True)
            cur.execute(f"SELECT {binary} FROM {table} WHERE id > ? ORDER BY id", (0,))
            got = cur.fetchall(), [d[:2] for d in cur.description]
            if conn is a:
                expected = got
        assert got == expected
    finally:
        a.close()
        b.close()


def test_foreign_keys_between_plain_columns(enc, direct, database) -> None:
    """FOREIGN KEYs whose columns are plain are enforced by the server and shown as MariaDB
    shows them (SHOW CREATE TABLE, information_schema); on an encrypted column refused."""
    ddl = [
        "CREATE TABLE p{s} (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20))",
        "CREATE TABLE c{s} (id INT AUTO_INCREMENT PRIMARY KEY, "
        "pid INT COMMENT 'cryptdb: plain', qid INT COMMENT 'cryptdb: plain', secret INT, "
        "CONSTRAINT fk_p{s} FOREIGN KEY (pid) REFERENCES p{s} (id) ON DELETE CASCADE, "
        "FOREIGN KEY (qid) REFERENCES p{s} (id))",
        "ALTER TABLE c{s} ADD CONSTRAINT fk_q2{s} FOREIGN KEY (qid) REFERENCES p{s} (id) "
        "ON UPDATE SET NULL",
        "ALTER TABLE c{s} DROP FOREIGN KEY c{s}_ibfk_1",
        "INSERT INTO p{s} (name) VALUES ('a'), ('b')",
        "INSERT INTO c{s} (pid, qid, secret) VALUES (1, 1, 10), (2, NULL, 20), (2, 1, 30)",
    ]
    for sql in ddl:
        rows(direct, sql.format(s="_plain"))
        rows(enc, sql.format(s=""))
    for s, conn in (("_plain", direct), ("", enc)):
        with pytest.raises(pymysql.err.IntegrityError) as e:
            rows(conn, f"INSERT INTO c{s} (pid, secret) VALUES (9, 1)")
        assert e.value.args[0] == 1452
        rows(conn, f"DELETE FROM p{s} WHERE id = 2")  # cascades to the rows of pid 2
    assert rows(enc, "SELECT id, pid, qid, secret FROM c ORDER BY id") == rows(
        direct, "SELECT id, pid, qid, secret FROM c_plain ORDER BY id"
    )

    def keys(conn: pymysql.Connection, s: str) -> list[str]:
        text = rows(conn, f"SHOW CREATE TABLE c{s}")[0][1]
        return [x.replace(s, "") for x in text.splitlines() if "KEY" in x]

    assert keys(enc, "") == keys(direct, "_plain")
    info = [
        "SELECT CONSTRAINT_NAME, TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, "
        "POSITION_IN_UNIQUE_CONSTRAINT, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME "
        "FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_NAME = 'c{s}' ORDER BY CONSTRAINT_NAME, ORDINAL_POSITION",
        "SELECT CONSTRAINT_NAME, UNIQUE_CONSTRAINT_NAME, MATCH_OPTION, UPDATE_RULE, DELETE_RULE, "
        "TABLE_NAME, REFERENCED_TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS "
        "WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = 'c{s}' ORDER BY CONSTRAINT_NAME",
        "SELECT CONSTRAINT_NAME, CONSTRAINT_TYPE FROM information_schema.TABLE_CONSTRAINTS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'c{s}' ORDER BY CONSTRAINT_NAME",
        "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'c{s}' ORDER BY INDEX_NAME",
    ]
    for sql in info:
        got = [tuple(str(v) for v in r) for r in rows(enc, sql.format(s=""))]
        plain = rows(direct, sql.format(s="_plain"))
        assert got == [tuple(str(v).replace("_plain", "") for v in r) for r in plain], sql
    # The server compares the values it enforces: an encrypted column cannot be one.
    for bad in (
        "CREATE TABLE x1 (id INT PRIMARY KEY, pid INT, FOREIGN KEY (pid) REFERENCES p (id))",
        "CREATE TABLE x2 (id INT PRIMARY KEY, n VARCHAR(20) COMMENT 'cryptdb: plain', "
        "FOREIGN KEY (n) REFERENCES p (name))",
        "ALTER TABLE c ADD FOREIGN KEY (secret) REFERENCES p (id)",
    ):
        with pytest.raises(pymysql.err.NotSupportedError) as e:
            rows(enc, bad)
        assert e.value.args[0] == 1235 and "encrypted column" in e.value.args[1], bad
    # A table the proxy does not know (yet): its names would reach the server as written.
    with pytest.raises(pymysql.err.NotSupportedError) as e:
        rows(enc, "CREATE TABLE x3 (id INT PRIMARY KEY, pid INT COMMENT 'cryptdb: plain', "
                  "FOREIGN KEY (pid) REFERENCES later (id))")  # fmt: skip
    assert "did not create" in e.value.args[1]
    assert {"c", "p"} <= {r[0] for r in rows(enc, "SHOW TABLES")}
    assert not {"x1", "x2"} & {r[0] for r in rows(enc, "SHOW TABLES")}


def test_first_writes_to_two_tables_in_one_transaction(enc) -> None:
    """The layer rows of a table's onions exist from its CREATE TABLE: a transaction's first
    write to a second table does not wait on the gap locks of its first write's guards."""
    rows(enc, "CREATE TABLE ta (id INT PRIMARY KEY, v VARCHAR(9))")
    rows(enc, "CREATE TABLE tb (id INT PRIMARY KEY, v VARCHAR(9))")
    rows(enc, "BEGIN")
    rows(enc, "INSERT INTO ta VALUES (1, 'a')")
    rows(enc, "INSERT INTO tb VALUES (1, 'b')")
    rows(enc, "ALTER TABLE ta ADD COLUMN w INT")  # commits; its new onions get rows too
    rows(enc, "BEGIN")
    rows(enc, "INSERT INTO tb VALUES (2, 'c')")
    rows(enc, "INSERT INTO ta VALUES (2, 'd', 5)")
    rows(enc, "COMMIT")
    assert rows(enc, "SELECT id, v, w FROM ta ORDER BY id") == [(1, "a", None), (2, "d", 5)]
    assert rows(enc, "SELECT id, v FROM tb ORDER BY id") == [(1, "b"), (2, "c")]


def test_read_committed_transactions_peel_again(enc, encrypted_proxy, database) -> None:
    """Under REPEATABLE READ a transaction that read a table since a peel holds share locks
    on its rows (its reads must be current), so a second peel of that table inside it is
    refused with 7004. Under READ COMMITTED (Django's level) plain reads see the peels:
    no locks, and every first use of a layer peels within the transaction."""
    make_table(enc)
    other = encrypted_proxy.connect(database, autocommit=True, charset="utf8mb4")
    try:
        rows(enc, "BEGIN")
        assert rows(enc, "SELECT id FROM t WHERE id = 1") == [(1,)]
        rows(other, "SELECT c FROM t WHERE c = 'beta'")  # a peel made after BEGIN
        assert rows(enc, "SELECT k FROM t WHERE c = 'gamma'") == [(3,)]  # a current read
        with pytest.raises(pymysql.err.OperationalError) as e:
            rows(enc, "SELECT c FROM t WHERE k = 2")  # peels k's Eq onion: waits on us
        assert e.value.args[0] == 7004
        rows(enc, "ROLLBACK")
        rows(enc, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        rows(enc, "BEGIN")
        assert rows(enc, "SELECT id FROM t WHERE id = 1") == [(1,)]
        rows(other, "SELECT c FROM t WHERE d = 1.50")  # a peel made after BEGIN
        assert rows(enc, "SELECT k FROM t WHERE c = 'gamma'") == [(3,)]
        assert rows(enc, "SELECT c FROM t WHERE k = 2") == [("beta",)]  # peels, in the txn
        assert rows(enc, "SELECT c FROM t WHERE k > 1 ORDER BY k") == [("beta",), ("gamma",)]
        rows(enc, "COMMIT")
        # For the next transaction only: its level is unknown, so its reads are current.
        rows(enc, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        rows(enc, "BEGIN")
        assert rows(enc, "SELECT id FROM t WHERE id = 2") == [(2,)]
        rows(other, "SELECT c FROM t WHERE d > 0")  # d's Ord onion, peeled after BEGIN
        assert rows(enc, "SELECT c FROM t WHERE d < 0") == [("gamma",)]  # its snapshot: RND
        rows(enc, "COMMIT")
    finally:
        other.close()


def test_drop_database_through_the_proxy(enc, backend) -> None:
    """DROP DATABASE [IF EXISTS] of a database holding encrypted tables drops it and its
    schema; of one the proxy does not know, it passes through."""
    import secrets

    name = f"dd_{secrets.token_hex(4)}"
    rows(enc, f"DROP DATABASE IF EXISTS {name}")  # nothing there: passes through
    rows(enc, f"CREATE DATABASE {name}")
    rows(enc, f"CREATE TABLE {name}.s (id INT PRIMARY KEY, v VARCHAR(9))")
    rows(enc, f"INSERT INTO {name}.s VALUES (1, 'x')")
    assert rows(enc, f"SELECT v FROM {name}.s WHERE v = 'x'") == [("x",)]
    rows(enc, f"DROP DATABASE IF EXISTS {name}")
    with backend.admin() as a, a.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE %s", (name,))
        assert cur.fetchall() == ()
    rows(enc, f"CREATE DATABASE {name}")
    try:
        rows(enc, f"CREATE TABLE {name}.s (id INT PRIMARY KEY)")  # the old schema is gone
        assert rows(enc, f"SHOW TABLES FROM {name}") == [("s",)]
    finally:
        rows(enc, f"DROP DATABASE {name}")


def test_select_exists_without_from(enc, direct) -> None:
    """`SELECT EXISTS (SELECT ...) AS anon_1` (SQLAlchemy's select(exists())): the inner
    statement decides it; values and metadata as MariaDB's for the same on plaintext."""
    make_table(enc)
    rows(direct, "CREATE TABLE t_plain (id INT PRIMARY KEY, k INT NOT NULL, c CHAR(20))")
    rows(direct, "INSERT INTO t_plain VALUES (1, 1, 'alpha'), (2, 2, 'beta'), (3, 3, 'gamma')")
    for q in (
        "SELECT EXISTS (SELECT t.id FROM t WHERE t.c = 'beta') AS anon_1",
        "SELECT EXISTS (SELECT t.id FROM t WHERE t.k > 5) AS anon_1",
        "SELECT NOT EXISTS (SELECT 1 FROM t WHERE k > 2) AS x",
    ):
        got, want = [], []
        for conn, table, out in ((enc, "t", got), (direct, "t_plain", want)):
            with conn.cursor() as cur:
                cur.execute(q.replace(" t ", f" {table} ").replace("t.", f"{table}."))
                fields = cur._result.fields
                out += [
                    cur.fetchall(),
                    [(f.type_code, f.length, f.flags, f.scale, f.charsetnr) for f in fields],
                    [f.name.replace("t_plain", "t") for f in fields],
                ]
        assert got == want, q
    with pytest.raises(pymysql.err.NotSupportedError):  # its name is its text: not sent
        rows(enc, "SELECT EXISTS (SELECT id FROM t WHERE k = 1)")


def test_insert_returning_through_the_proxy(enc, direct) -> None:
    """INSERT ... RETURNING in the proxy's own transaction: the rows decrypted once it
    committed; a failing INSERT is MariaDB's error and leaves nothing behind."""
    make_table(enc)
    got = rows(
        enc, "INSERT INTO t (k, c, d) VALUES (7, 'x', 1.25), (8, NULL, NULL) RETURNING id, c, d"
    )
    assert got == [(4, "x", Decimal("1.25")), (5, None, None)]
    with pytest.raises(pymysql.err.IntegrityError) as e:
        rows(enc, "INSERT INTO t (id, k, c) VALUES (9, 9, 'y'), (1, 1, 'dup') RETURNING id")
    assert e.value.args[0] == 1062
    assert rows(enc, "SELECT COUNT(*) FROM t") == [(5,)] and not enc.server_status & 1
