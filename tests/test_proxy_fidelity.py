"""What a client sees through the proxy equals what it sees on a direct connection.

Every test runs the same statements on a direct PyMySQL connection and through the proxy
(a differential oracle) and compares values, types, column metadata and OK-packet fields.
"""

from __future__ import annotations

import datetime
import decimal

import mysql.connector
import pymysql
import pytest
from pymysql.constants import CLIENT

from proxy.devbackend import DEMO_PASSWORD, DEMO_USER

TYPES_TABLE = """
CREATE TABLE typed (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  i INT, ub BIGINT UNSIGNED NOT NULL, d DECIMAL(30,10), f DOUBLE,
  dt DATE, dtm DATETIME(6), t TIME, s VARCHAR(64) CHARACTER SET utf8mb4,
  b BLOB, n INT NULL
)"""
ROWS = [
    (
        -2147483648,
        18446744073709551615,
        decimal.Decimal("-12345678901234567890.0123456789"),
        -1.5e300,
        datetime.date(1000, 1, 1),
        datetime.datetime(2024, 2, 29, 23, 59, 59, 999999),
        datetime.timedelta(hours=838, minutes=59, seconds=59),
        "emoji 😀 and ü",
        b"\x00nul\x00bytes\xff",
        None,
    ),
    (
        2147483647,
        0,
        decimal.Decimal("99999999999999999999.9999999999"),
        2.2250738585072014e-308,
        datetime.date(9999, 12, 31),
        datetime.datetime(1970, 1, 1, 0, 0, 0, 1),
        -datetime.timedelta(hours=838, minutes=59, seconds=59),
        "",
        b"",
        None,
    ),
]


@pytest.fixture
def through(proxy, database: str) -> pymysql.Connection:
    conn = proxy.connect(database, autocommit=True)
    yield conn
    conn.close()


def run(conn: pymysql.Connection, sql: str, args: object = None) -> tuple:
    with conn.cursor() as cur:
        affected = cur.execute(sql, args)
        return affected, cur.lastrowid, cur.description, cur.fetchall(), conn.get_server_info()


def test_types_values_and_metadata_match_direct(direct, through) -> None:
    run(direct, TYPES_TABLE)
    insert = "INSERT INTO typed (i, ub, d, f, dt, dtm, t, s, b, n) VALUES " + ", ".join(
        ["(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(ROWS)
    )
    affected, lastrowid, *_ = run(through, insert, [v for row in ROWS for v in row])
    assert (affected, lastrowid) == (2, 1)
    d = run(direct, "SELECT * FROM typed ORDER BY id")
    p = run(through, "SELECT * FROM typed ORDER BY id")
    assert p[3] == d[3]  # values, decoded by PyMySQL from each side's metadata
    assert p[2] == d[2]  # (name, type, display size, internal size, precision, scale, null_ok)
    assert [row[1:] for row in p[3]] == ROWS


def test_column_flags_reach_the_client(direct, through) -> None:
    run(direct, TYPES_TABLE)
    flags = {}
    for name, conn in (("direct", direct), ("proxy", through)):
        with conn.cursor() as cur:
            cur.execute("SELECT id, ub, b, d FROM typed")
            flags[name] = [
                (f.name, f.type_code, f.flags, f.scale, f.charsetnr, f.length)
                for f in cur._result.fields
            ]
    assert flags["proxy"] == flags["direct"]
    by_name = {f[0]: f for f in flags["proxy"]}
    assert by_name["ub"][2] & 32  # UNSIGNED
    assert by_name["id"][2] & 1  # NOT NULL
    assert by_name["b"][2] & 128  # BINARY
    assert by_name["d"][3] == 10  # decimals


def test_ok_packets_carry_affected_rows_insert_id_and_info(direct, through) -> None:
    run(direct, "CREATE TABLE k (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
    assert run(through, "INSERT INTO k (v) VALUES (1), (2), (3)")[:2] == (3, 1)
    assert run(through, "INSERT INTO k (v) VALUES (4)")[:2] == (1, 4)
    assert run(through, "UPDATE k SET v = v + 10 WHERE v > 1")[0] == 3
    assert run(through, "UPDATE k SET v = v WHERE id = 1")[0] == 0  # matched, not changed
    assert run(through, "DELETE FROM k WHERE v > 12")[0] == 2
    with through.cursor() as cur:
        cur.execute("SELECT LAST_INSERT_ID()")
        assert cur.fetchone() == (4,)
    for conn in (through, direct):
        with conn.cursor() as cur:
            cur.execute("UPDATE k SET v = v + 1")
    assert b"Rows matched: 2" in through._result.message
    assert through._result.message == direct._result.message


def test_found_rows_flag_is_honoured(proxy, database: str, direct) -> None:
    run(direct, "CREATE TABLE f (id INT PRIMARY KEY, v INT)")
    run(direct, "INSERT INTO f VALUES (1, 1)")
    conn = proxy.connect(database, autocommit=True, client_flag=CLIENT.FOUND_ROWS)
    assert run(conn, "UPDATE f SET v = 1 WHERE id = 1")[0] == 1  # matched rows
    conn.close()


def test_warnings_count_reaches_the_client(through) -> None:
    with through.cursor() as cur:
        cur.execute("SELECT CAST('12abc' AS INTEGER)")
        assert cur.fetchone() == (12,)
    assert through._result.warning_count == 1  # from the backend's final EOF/OK packet
    with through.cursor() as cur:
        cur.execute("SHOW WARNINGS")
        assert cur.fetchall()[0][1] == 1292


def test_backend_errors_pass_through_and_connection_survives(through) -> None:
    with pytest.raises(pymysql.err.ProgrammingError) as e, through.cursor() as cur:
        cur.execute("SELEKT nonsense")
    assert e.value.args[0] == 1064
    assert "You have an error in your SQL syntax" in e.value.args[1]
    with pytest.raises(pymysql.err.ProgrammingError) as e, through.cursor() as cur:
        cur.execute("SELECT * FROM no_such_table")
    assert e.value.args[0] == 1146
    with through.cursor() as cur:
        cur.execute("SELECT 'still here'")
        assert cur.fetchone() == ("still here",)


def test_sqlstate_reaches_the_client(proxy, database: str) -> None:
    conn = proxy.connector(database)
    cur = conn.cursor()
    with pytest.raises(mysql.connector.Error) as e:
        cur.execute("SELECT * FROM no_such_table")
    assert (e.value.errno, e.value.sqlstate) == (1146, "42S02")
    conn.close()


def test_rollback_really_rolls_back(proxy, database: str, direct) -> None:
    run(direct, "CREATE TABLE acct (id INT PRIMARY KEY, balance INT) ENGINE=InnoDB")
    run(direct, "INSERT INTO acct VALUES (1, 100)")
    conn = proxy.connect(database)
    conn.begin()
    run(conn, "UPDATE acct SET balance = 0 WHERE id = 1")
    assert conn.server_status & 0x0001  # SERVER_STATUS_IN_TRANS from the backend
    assert run(direct, "SELECT balance FROM acct")[3] == ((100,),)  # isolation
    conn.rollback()
    assert run(conn, "SELECT balance FROM acct")[3] == ((100,),)
    conn.begin()
    run(conn, "UPDATE acct SET balance = 5 WHERE id = 1")
    conn.commit()
    assert run(direct, "SELECT balance FROM acct")[3] == ((5,),)
    conn.close()


def test_session_state_lives_on_one_backend_connection(through) -> None:
    run(through, "SET @v = 41")
    run(through, "CREATE TEMPORARY TABLE tmp (x INT)")
    run(through, "INSERT INTO tmp VALUES (@v + 1)")
    assert run(through, "SELECT x FROM tmp")[3] == ((42,),)
    run(through, "SET SESSION sql_mode = 'ANSI_QUOTES'")
    assert run(through, "SELECT @@SESSION.sql_mode")[3] == (("ANSI_QUOTES",),)


def test_multi_statements_when_enabled(proxy, database: str) -> None:
    conn = proxy.connect(database, client_flag=CLIENT.MULTI_STATEMENTS, autocommit=True)
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE m (x INT); INSERT INTO m VALUES (1),(2); SELECT x FROM m; SELECT 9"
        )
        results = []
        while True:
            results.append((cur.rowcount, tuple(cur.fetchall())))
            if not cur.nextset():
                break
    assert results == [(0, ()), (2, ()), (2, ((1,), (2,))), (1, ((9,),))]
    conn.close()


def test_multi_statements_refused_when_not_enabled(through) -> None:
    with pytest.raises(pymysql.err.ProgrammingError) as e, through.cursor() as cur:
        cur.execute("SELECT 1; SELECT 2")
    assert e.value.args[0] == 1064
    assert run(through, "SELECT 3")[3] == ((3,),)


def test_init_db_and_ping(through, backend) -> None:
    with backend.admin() as a, a.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS other_db")
    through.select_db("other_db")
    assert run(through, "SELECT DATABASE()")[3] == (("other_db",),)
    with pytest.raises(pymysql.err.OperationalError) as e:
        through.select_db("no_such_db")
    assert e.value.args[0] == 1049
    through.ping(reconnect=False)


def test_reset_connection_really_resets(proxy, database: str) -> None:
    conn = proxy.connector(database)
    cur = conn.cursor()
    cur.execute("SET @marker = 'before'")
    cur.execute("CREATE TEMPORARY TABLE gone (x INT)")
    cur.execute("SELECT CONNECTION_ID()")
    (thread_before,) = cur.fetchone()
    cur.close()
    conn.cmd_reset_connection()
    cur = conn.cursor()
    cur.execute("SELECT @marker, CONNECTION_ID()")
    assert cur.fetchone() == (None, thread_before)  # same backend session, state cleared
    with pytest.raises(mysql.connector.Error) as e:
        cur.execute("SELECT * FROM gone")
    assert e.value.errno == 1146
    conn.close()


def test_large_result_and_large_values(through, direct) -> None:
    run(direct, "CREATE TABLE big (id INT PRIMARY KEY, payload LONGBLOB)")
    blob = bytes(range(256)) * (20 * 1024 * 1024 // 256)  # 20 MiB: spans 0xFFFFFF packets
    run(through, "INSERT INTO big VALUES (1, %s)", (blob,))
    assert run(through, "SELECT payload FROM big")[3] == ((blob,),)
    run(direct, "CREATE TABLE many (id INT PRIMARY KEY)")
    run(direct, "INSERT INTO many SELECT seq FROM seq_1_to_50000")
    rows = run(through, "SELECT id FROM many ORDER BY id")[3]
    assert len(rows) == 50000 and rows[-1] == (50000,)


def test_prepared_statements_match_a_direct_connection(proxy, backend, database: str) -> None:
    """Server-side prepared statements (emulated by the proxy) give the values and types a
    direct connection gives: binary rows for every common type, NULLs, parameters."""
    direct = mysql.connector.connect(
        host="127.0.0.1", port=backend.port, user=DEMO_USER, password=DEMO_PASSWORD,
        database=database, use_pure=True, ssl_disabled=True,
    )  # fmt: skip
    through = proxy.connector(database)
    try:
        setup = direct.cursor()
        setup.execute(
            "CREATE TABLE ps (id INT PRIMARY KEY, ti TINYINT, si SMALLINT UNSIGNED, bi BIGINT, "
            "ub BIGINT UNSIGNED, f FLOAT, d DOUBLE, de DECIMAL(12,3), s VARCHAR(20), b BLOB, "
            "da DATE, dt DATETIME(6), tm TIME, y YEAR)"
        )
        setup.execute(
            "INSERT INTO ps VALUES (1, -5, 65535, -9007199254740993, 18446744073709551615, 1.5, "
            "2.25, -123.456, 'héllo ''q''', X'00ff10', '2024-02-29', '2024-02-29 13:14:15.123456', "
            "'-838:59:59', 2024), (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
            "NULL, NULL, NULL)"
        )
        direct.commit()
        queries = [
            ("SELECT * FROM ps WHERE id = ?", (1,)),
            ("SELECT * FROM ps WHERE id = ?", (2,)),
            ("SELECT id, s FROM ps WHERE s = ? OR de = ? OR da = ?",
             ("héllo 'q'", decimal.Decimal("-123.456"), datetime.date(2024, 2, 29))),
            ("SELECT ? AS a, ? AS b, ? AS c, ? AS d", (None, 3.5, b"\x00\xfe", "it's \\ ok")),
            ("SELECT COUNT(*) FROM ps WHERE dt < ?", (datetime.datetime(2030, 1, 1, 0, 0, 0, 5),)),
            ("SELECT id FROM ps WHERE s = '?' OR id = ?", (2,)),  # a '?' in a string is text
        ]  # fmt: skip
        for sql, args in queries:
            a, b = direct.cursor(prepared=True), through.cursor(prepared=True)
            a.execute(sql, args)
            b.execute(sql, args)
            assert b.fetchall() == a.fetchall(), sql
            if "FROM ps" in sql:  # a bare `SELECT ?` is typed by its literal, not its binding
                assert [c[:2] for c in b.description] == [c[:2] for c in a.description], sql
        cur = through.cursor(prepared=True)
        cur.execute("UPDATE ps SET s = ? WHERE id = ?", ("new", 2))
        assert cur.rowcount == 1
        cur.execute("SELECT s FROM ps WHERE id = ?", (2,))
        assert cur.fetchall() == [("new",)]
        with pytest.raises(mysql.connector.Error) as e:
            cur.execute("SELECT * FROM nowhere WHERE id = ?", (1,))
        assert e.value.errno == 1146
        plain = through.cursor()
        plain.execute("SELECT 'usable'")
        assert plain.fetchall() == [("usable",)]
    finally:
        direct.close()
        through.close()
