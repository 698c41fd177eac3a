"""Subqueries through the LIVE proxy (`cryptdb serve`): tests/subquery_workload.py's seeded
statements on encrypted tables (and a plain table the proxy did not create) against a
plaintext copy straight on MariaDB. Rows with their Python types, result metadata, affected
rows and errors must agree; the refusals answer 1235 naming what is unsupported; UPDATE /
DELETE in autocommit leave no transaction open; afterwards the encrypted tables hold no
plaintext value the workload used.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pymysql
import pytest
from pymysql.constants import CLIENT

from proxy.devbackend import DevBackend
from tests.conftest import ProxyProcess
from tests.rewrite_support import connect, extra_database
from tests.rewrite_workload import BIG, DDL, needles, same
from tests.subquery_workload import DDL_J, DDL_PL, DDL_Q, REFUSED, SubqueryWorkload
from tests.test_proxy_differential import _db, _run, compare_through_proxy

STATEMENTS = 500
# Writes of every plan kind under a subquery, in the proxy's own transaction.
FIXED = [
    "UPDATE r SET a = a + 1 WHERE a IN (SELECT a FROM q WHERE k < 8)",  # read-modify-write
    "UPDATE r SET h = h + 2 WHERE id IN (SELECT k FROM pl)",  # HOM in place
    "UPDATE r SET p = 3 WHERE EXISTS (SELECT * FROM q WHERE k = 1)",
    "UPDATE r SET s = (SELECT v FROM j WHERE v IS NOT NULL ORDER BY v LIMIT 1) WHERE id < 5",
    "DELETE FROM r WHERE t < ALL (SELECT t FROM q WHERE t IS NOT NULL) ORDER BY id LIMIT 2",
    "SELECT id, h FROM r WHERE id IN (SELECT k FROM pl)",
]
ERRORS = [
    ("SELECT id FROM r WHERE a = (SELECT a FROM q)", 1242),
    ("SELECT id FROM r WHERE a IN (SELECT a, k FROM q)", 1241),
    ("SELECT id FROM r WHERE a IN (SELECT a FROM q LIMIT 2)", 1235),
    ("SELECT id FROM r WHERE a IN (SELECT nosuch FROM q)", 1054),
    ("DELETE FROM r WHERE a = (SELECT a FROM q)", 1242),
]


@pytest.fixture
def encrypted_db(backend: DevBackend) -> Iterator[str]:
    with extra_database(backend, "psub") as name:
        yield name


def _setup(
    backend: DevBackend, p: ProxyProcess, plain_db: str, enc_db: str, work: SubqueryWorkload
) -> tuple[pymysql.Connection, pymysql.Connection]:
    enc = p.connect(enc_db, autocommit=True, charset="utf8mb4", client_flag=CLIENT.FOUND_ROWS)
    plain = connect(backend, plain_db, charset="utf8mb4", client_flag=CLIENT.FOUND_ROWS)
    side = connect(backend, enc_db, charset="utf8mb4")  # the table the proxy did not create
    try:
        for ddl in (DDL, DDL_Q, DDL_J):
            assert _run(plain, ddl)[0] == "ok"
            assert _run(enc, ddl)[0] == "ok", ddl
        assert _run(plain, DDL_PL)[0] == _run(side, DDL_PL)[0] == "ok"
        statements = [work.insert().sql for _ in range(12)]
        statements += [work.insert_q(k) for k in range(1, 13)]
        statements += [work.insert_j() for _ in range(8)]
        for sql in statements:
            assert _run(plain, sql)[0] == "ok"
            assert _run(enc, sql)[0] == "ok", sql
        for k in range(1, 11):
            sql = work.insert_pl(k)
            assert _run(plain, sql)[0] == _run(side, sql)[0] == "ok"
    finally:
        side.close()
    return plain, enc


@contextmanager
def live_pair(
    backend: DevBackend, proxy: ProxyProcess, plain_db: str, enc_db: str
) -> Iterator[tuple[pymysql.Connection, pymysql.Connection, list[str]]]:
    """A connection straight to `plain_db`, one through the proxy to `enc_db`, and (filled
    on leaving) every statement the proxy's backend connection received meanwhile."""
    enc = proxy.connect(enc_db, autocommit=True, charset="utf8mb4", client_flag=CLIENT.FOUND_ROWS)
    plain = connect(backend, plain_db, charset="utf8mb4", client_flag=CLIENT.FOUND_ROWS)
    try:
        thread = _run(enc, "SELECT CONNECTION_ID()")[1][0][0][1]  # the proxy's backend one
        with general_log(backend, thread) as sent:
            yield plain, enc, sent
    finally:
        enc.close()
        plain.close()


@contextmanager
def general_log(backend: DevBackend, thread: int) -> Iterator[list[str]]:
    """Every statement one backend connection receives meanwhile (MariaDB's general log)."""
    sent: list[str] = []
    with backend.admin() as conn, conn.cursor() as cur:
        cur.execute("SET GLOBAL log_output = 'TABLE'")
        cur.execute("TRUNCATE mysql.general_log")
        cur.execute("SET GLOBAL general_log = 1")
    try:
        yield sent
    finally:
        with backend.admin() as conn, conn.cursor() as cur:
            cur.execute("SET GLOBAL general_log = 0")
            cur.execute(
                "SELECT argument FROM mysql.general_log "
                f"WHERE command_type = 'Query' AND thread_id = {thread}"
            )
            sent += [r[0] if isinstance(r[0], str) else r[0].decode("utf-8", "replace")
                     for r in cur.fetchall()]  # fmt: skip
            cur.execute("TRUNCATE mysql.general_log")


@pytest.mark.parametrize("seed", [21, 22])
def test_subqueries_through_the_proxy(
    backend: DevBackend, encrypted_proxy: ProxyProcess, database: str, encrypted_db: str, seed: int
) -> None:
    work = SubqueryWorkload(seed)
    plain, enc = _setup(backend, encrypted_proxy, database, encrypted_db, work)
    kinds: Counter[str] = Counter()
    thread = _run(enc, "SELECT CONNECTION_ID()")[1][0][0][1]  # the proxy's backend connection
    log = general_log(backend, thread)
    sent = log.__enter__()
    try:
        for n in range(STATEMENTS):
            roll = work.rng.random()
            st = work.insert() if roll < 0.15 else work.subquery_statement()
            status, p_result = compare_through_proxy(
                plain, enc, st.sql, st.ordered, (seed, n), database, encrypted_db, insert_ids=False
            )
            assert not enc.server_status & 1, (seed, n, st.sql)  # our own transaction ended
            if status == "error":
                kinds["both failed"] += 1
                continue
            kinds[st.kind] += 1
        for sql in FIXED:
            p_out, e_out = _run(plain, sql), _run(enc, sql)
            assert p_out[:2] == e_out[:2], (sql, p_out, e_out)
            assert not enc.server_status & 1, sql
        for sql, code in ERRORS:
            p_status, p_code, _ = _run(plain, sql)
            e_status, e_code, e_msg = _run(enc, sql)
            assert (p_status, p_code) == (e_status, e_code) == ("error", code), (sql, e_msg)
        final = _run(plain, "SELECT * FROM r ORDER BY id")
        assert final[:2] == _run(enc, "SELECT * FROM r ORDER BY id")[:2]
        assert final[1], "the workload left no rows"
        assert enc.get_autocommit() and not enc.server_status & 1  # no transaction left open
    finally:
        log.__exit__(None, None, None)
        enc.close()
        plain.close()
    print(f"\nseed {seed} through the proxy: {dict(kinds)}, {len(sent)} backend statements")
    assert kinds["rows"] > STATEMENTS // 2 and kinds["update"] > 20 and kinds["delete"] > 10
    _scan(backend, encrypted_db, needles(work.used | {str(v) for v in BIG}))
    # What the server was sent about its encrypted tables (the statements naming a `t_<id>`
    # table; the others read the plain table pl) holds no text or date the workload used:
    # substituted values went encrypted.
    about_encrypted = [q for q in sent if re.search(r"`t_\d+`", q)]
    assert len(about_encrypted) > STATEMENTS
    texts = {v for v in work.used if len(v) >= 5}
    assert [(v, q[:60]) for q in about_encrypted for v in texts if v in q] == []
    # Control: the log has the plaintext the statements on the plain table carry.
    assert any(v in q for q in sent if q not in about_encrypted for v in texts)


def _scan(backend: DevBackend, db: str, wanted: set[bytes]) -> None:
    """Every anonymized table's encrypted columns, read straight from MariaDB."""
    conn = connect(backend, db)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW TABLES")
            tables = [r[0] for r in cur.fetchall() if re.fullmatch(r"t_\d+", r[0])]
            assert len(tables) == 3
            hits = []
            for table in tables:
                cur.execute(f"SELECT * FROM `{table}`")
                names = [d[0] for d in cur.description]
                rows = cur.fetchall()
                assert rows, table
                hits += [
                    (table, name, needle)
                    for row in rows
                    for name, cell in zip(names, row, strict=True)
                    if "_" in name and cell is not None
                    for needle in wanted
                    if needle in (cell if isinstance(cell, bytes) else str(cell).encode())
                ]
            assert hits == []
    finally:
        conn.close()


def test_refusals_through_the_proxy(
    backend: DevBackend, encrypted_proxy: ProxyProcess, database: str, encrypted_db: str
) -> None:
    plain, enc = _setup(backend, encrypted_proxy, database, encrypted_db, SubqueryWorkload(7))
    try:
        for sql, word in REFUSED:
            status, code, message = _run(enc, sql)
            assert (status, code) == ("error", 1235) and word in message, (sql, message)
        # The connection goes on; the refused writes changed nothing.
        assert _run(enc, "SELECT * FROM r ORDER BY id")[:2] == _run(
            plain, "SELECT * FROM r ORDER BY id"
        )[:2]
    finally:
        enc.close()
        plain.close()


def test_write_in_a_client_transaction(
    backend: DevBackend, encrypted_proxy: ProxyProcess, database: str, encrypted_db: str
) -> None:
    """Inside the client's transaction the write is the client's to commit or roll back."""
    plain, enc = _setup(backend, encrypted_proxy, database, encrypted_db, SubqueryWorkload(8))
    try:
        before = _run(enc, "SELECT * FROM r ORDER BY id")
        enc.begin()
        status, count, _ = _run(enc, "DELETE FROM r WHERE a IN (SELECT a FROM q)")
        assert status == "ok" and enc.server_status & 1
        assert _run(enc, "SELECT COUNT(*) FROM r WHERE a IN (SELECT a FROM q)")[1] == [
            (("int", 0),)
        ]
        enc.rollback()
        assert _run(enc, "SELECT * FROM r ORDER BY id")[:2] == before[:2]
        assert count == _run(plain, "DELETE FROM r WHERE a IN (SELECT a FROM q)")[1]
    finally:
        enc.close()
        plain.close()


def test_prepared_statements(
    backend: DevBackend, encrypted_proxy: ProxyProcess, database: str, encrypted_db: str
) -> None:
    """COM_STMT_EXECUTE (mysql-connector, binary rows) takes the same paths: subqueries,
    HAVING and UNION with bound parameters, and a write with a subquery in autocommit."""
    plain, enc = _setup(backend, encrypted_proxy, database, encrypted_db, SubqueryWorkload(9))
    enc.close()
    conn = encrypted_proxy.connector(encrypted_db, autocommit=True, charset="utf8mb4")
    statements = [
        ("SELECT id, s, t FROM r WHERE a IN (SELECT a FROM q WHERE k < %s)", (7,)),
        ("SELECT id FROM r WHERE a > (SELECT AVG(a) FROM q WHERE k > %s)", (2,)),
        ("SELECT id FROM r WHERE NOT EXISTS (SELECT * FROM q WHERE s = %s)", ("zeta",)),
        ("SELECT a, COUNT(*) FROM r GROUP BY a HAVING COUNT(*) >= %s", (1,)),
        ("SELECT a FROM r WHERE id > %s UNION SELECT k FROM q ORDER BY 1", (3,)),
        ("SELECT COUNT(*), MAX(x.s) FROM (SELECT DISTINCT s FROM r WHERE a > %s) AS x", (0,)),
        ("SELECT * FROM (SELECT id, t FROM r ORDER BY t, id LIMIT %s) AS x ORDER BY id", (4,)),
        ("DELETE FROM r WHERE a IN (SELECT a FROM q WHERE k < %s)", (5,)),
        ("SELECT id, a FROM r", ()),
    ]
    try:
        for sql, params in statements:
            cur = conn.cursor(prepared=True)
            cur.execute(sql, params)
            got = cur.fetchall() if cur.with_rows else cur.rowcount
            cur.close()
            with plain.cursor() as pcur:
                pcur.execute(sql, params)
                want = list(pcur.fetchall()) if pcur.description else pcur.rowcount
            if isinstance(want, int):
                assert got == want, sql
            else:
                # mysql-connector gives text under a binary collation as bytes
                rows = [tuple(v.decode() if isinstance(v, bytes | bytearray) else v for v in r)
                        for r in got]  # fmt: skip
                assert same(want, rows, "ORDER BY" in sql), (sql, want, got)
        assert not conn.in_transaction
    finally:
        conn.close()
        plain.close()


def test_write_reads_the_latest_rows_under_lock(
    backend: DevBackend, encrypted_proxy: ProxyProcess, database: str, encrypted_db: str
) -> None:
    """A DELETE with a subquery in autocommit runs in one transaction whose subquery reads
    lock: it waits for another transaction's change to the rows it reads, then decides on
    the committed value (a consistent read would have used the old one)."""
    import threading

    plain, enc = _setup(backend, encrypted_proxy, database, encrypted_db, SubqueryWorkload(14))
    plain.close()
    other = encrypted_proxy.connect(encrypted_db, autocommit=True, charset="utf8mb4")
    try:
        assert _run(enc, "INSERT INTO r (a, b) VALUES (100, 1), (100, 2), (101, 3)")[0] == "ok"
        assert _run(enc, "UPDATE q SET a = 101 WHERE k = 1")[0] == "ok"
        other.begin()
        assert _run(other, "UPDATE q SET a = 100 WHERE k = 1")[0] == "ok"  # row lock held
        outcome: list[object] = []
        sql = "DELETE FROM r WHERE a IN (SELECT a FROM q WHERE k = 1)"
        worker = threading.Thread(target=lambda: outcome.append(_run(enc, sql)))
        worker.start()
        worker.join(1.0)
        assert worker.is_alive(), "the subquery did not wait for the row lock"
        other.commit()
        worker.join(20)
        assert outcome and outcome[0][:2] == ("ok", 2), outcome  # the two rows with a = 100
        assert _run(enc, "SELECT COUNT(*) FROM r WHERE a = 101")[1] == [(("int", 1),)]
        assert not enc.server_status & 1
    finally:
        other.close()
        enc.close()


SELECT_LIST = [
    "SELECT id, (SELECT MAX(a) FROM q) FROM r",
    "SELECT id, (SELECT s FROM q WHERE k = 1) AS m, a FROM r WHERE a > 0",
    "SELECT id, (SELECT a FROM q WHERE k > 100), (SELECT MIN(t) FROM q) FROM r ORDER BY id",
    "SELECT a, COUNT(*), (SELECT COUNT(*) FROM j) FROM r GROUP BY a ORDER BY a",
    "SELECT id, (SELECT SUM(a) FROM q), (SELECT AVG(d) FROM r) FROM r WHERE id < 5",
    "SELECT id, (SELECT v FROM j ORDER BY v LIMIT 1) FROM r",
    "SELECT id, (SELECT a FROM q) FROM r",
]


def test_select_list_subqueries_through_the_proxy(
    backend: DevBackend, encrypted_proxy: ProxyProcess, database: str, encrypted_db: str
) -> None:
    """A subquery in the select list: its value added to each row by the proxy, described
    as MariaDB describes it (rows, types and metadata compared)."""
    plain, enc = _setup(backend, encrypted_proxy, database, encrypted_db, SubqueryWorkload(15))
    try:
        for sql in SELECT_LIST:
            p, e = _run(plain, sql), _run(enc, sql)
            assert p[0] == e[0], (sql, p, e)
            if p[0] == "error":
                assert p[1] == e[1], (sql, p, e)
                continue
            ordered = sql.endswith(("ORDER BY id", "ORDER BY a"))
            assert same(p[1], e[1], ordered), (sql, p[1], e[1])
            assert _db(p[2], database) == _db(e[2], encrypted_db), (sql, p[2], e[2])
    finally:
        enc.close()
        plain.close()
