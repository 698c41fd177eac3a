"""Subqueries decided by the proxy (proxy.rewrite.subquery), through the rewriter's plans
(tests/rewrite_support.py's EncryptedRunner) against a plaintext copy on MariaDB: the seeded
workload of tests/subquery_workload.py (IN / NOT IN, scalar comparisons, EXISTS / NOT EXISTS
in SELECT, UPDATE and DELETE, over encrypted tables, a join group and a plain table), the
semantics at the edges (empty results, NULLs, errors 1241 / 1242), the refusals, and a scan
of the encrypted tables for every plaintext value used.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pymysql
import pytest

from tests.rewrite_support import (
    BOTH_FAILED,
    EncryptedRunner,
    compare_outcomes,
    encrypted_outcome,
    plain_outcome,
)
from tests.rewrite_workload import BIG, DDL, needles, same
from tests.subquery_workload import DDL_J, DDL_PL, DDL_Q, REFUSED, SubqueryWorkload

STATEMENTS = 600


def populate(
    work: SubqueryWorkload,
    run_plain: Callable[[str], Any],
    run_enc: Callable[[str], Any],
    run_enc_backend: Callable[[str], Any],
) -> None:
    """The four tables on both sides; pl is created on the encrypted side's backend
    directly (a table the proxy does not know: plain there too)."""
    for ddl in (DDL, DDL_Q, DDL_J):
        run_plain(ddl)
        run_enc(ddl)
    run_plain(DDL_PL)
    run_enc_backend(DDL_PL)
    statements = [work.insert().sql for _ in range(12)]
    statements += [work.insert_q(k) for k in range(1, 13)]
    statements += [work.insert_j() for _ in range(8)]
    for sql in statements:
        run_plain(sql)
        run_enc(sql)
    for k in range(1, 11):
        sql = work.insert_pl(k)
        run_plain(sql)
        run_enc_backend(sql)


def _backend_runner(runner: EncryptedRunner) -> Callable[[str], Any]:
    def run(sql: str) -> Any:
        with runner.conn.cursor() as cur:
            cur.execute(sql)

    return run


def _plain_runner(cur: Any) -> Callable[[str], Any]:
    def run(sql: str) -> Any:
        cur.execute(sql)

    return run


def _kind(sql: str) -> str:
    if any(f" {w} (SELECT" in sql for w in ("ANY", "SOME", "ALL")):
        return "any/all"
    if " IN (SELECT" in sql:
        return "in"
    if "EXISTS (" in sql:
        return "exists"
    return "scalar"


@pytest.mark.parametrize("seed", [11, 12])
def test_subquery_differential(
    plain: pymysql.Connection, encrypted: EncryptedRunner, seed: int
) -> None:
    work = SubqueryWorkload(seed)
    kinds: Counter[str] = Counter()
    with plain.cursor() as cur:
        populate(work, _plain_runner(cur), encrypted.execute, _backend_runner(encrypted))
        for n in range(STATEMENTS):
            roll = work.rng.random()
            if roll < 0.2:
                st = work.insert()
            elif roll < 0.22:
                st = work.update()
            else:
                st = work.subquery_statement()
            p = compare_outcomes(cur, encrypted, st.sql, st.ordered, (seed, n))
            if p is BOTH_FAILED:
                kinds["both failed"] += 1
                continue
            kinds[st.kind if st.kind == "insert" else f"{st.kind} {_kind(st.sql)}"] += 1
            if isinstance(p, list) and p or isinstance(p, int) and p:
                kinds["non-empty"] += 1
        cur.execute("SELECT * FROM r ORDER BY id")
        final = cur.fetchall()
    assert same(final, encrypted.execute("SELECT * FROM r ORDER BY id"), True)
    print(f"\nseed {seed}: {dict(kinds)}, peels {encrypted.peels}")
    assert kinds["rows in"] > 50 and kinds["rows scalar"] > 50 and kinds["rows exists"] > 15
    assert kinds["rows any/all"] > 30
    assert kinds["update in"] + kinds["update scalar"] + kinds["update exists"] > 20
    assert kinds["delete in"] + kinds["delete scalar"] + kinds["delete exists"] > 10
    assert kinds["non-empty"] > STATEMENTS // 3
    assert kinds["both failed"] < STATEMENTS // 10
    scan_encrypted(encrypted, needles(work.used | {str(v) for v in BIG}))


def scan_encrypted(
    runner: EncryptedRunner, wanted: set[bytes], tables: tuple[str, ...] = ("r", "q", "j")
) -> None:
    """The encrypted tables' rows as MariaDB holds them: no plaintext value used."""
    hits = []
    for name in tables:
        table = runner.schema.table(runner.database, name)
        assert table is not None
        plain_cols = {c.plain_name for c in table.columns if c.plain}
        with runner.conn.cursor() as cur:
            cur.execute(f"SELECT * FROM `{table.backend_name}`")
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        assert rows, name
        hits += [
            (name, col, needle)
            for row in rows
            for col, cell in zip(names, row, strict=True)
            if col not in plain_cols and cell is not None
            for needle in wanted
            if needle in (cell if isinstance(cell, bytes) else str(cell).encode())
        ]
    assert hits == []


EDGE_CASES = [
    "SELECT id FROM r WHERE a IN (SELECT a FROM q WHERE k > 100)",
    "SELECT id FROM r WHERE a NOT IN (SELECT a FROM q WHERE k > 100)",
    "SELECT id FROM r WHERE NOT (a IN (SELECT a FROM q WHERE k > 100))",
    "SELECT id FROM r WHERE a NOT IN (SELECT a FROM q)",
    "SELECT id FROM r WHERE a IN (SELECT a FROM q) OR a IS NULL",
    "SELECT id FROM r WHERE a = (SELECT a FROM q WHERE k > 100)",
    "SELECT id FROM r WHERE a <=> (SELECT a FROM q WHERE k > 100)",
    "SELECT id FROM r WHERE a = (SELECT a FROM q WHERE k = 2)",
    "SELECT id FROM r WHERE a = (SELECT a FROM q)",
    "SELECT id FROM r WHERE a IN (SELECT a, k FROM q)",
    "SELECT id FROM r WHERE a = (SELECT a, k FROM q)",
    "SELECT id FROM r WHERE a IN (SELECT a FROM q LIMIT 2)",
    "SELECT id FROM r WHERE EXISTS (SELECT * FROM q WHERE k > 100)",
    "SELECT id FROM r WHERE NOT EXISTS (SELECT * FROM q WHERE k > 100)",
    "SELECT id FROM r WHERE EXISTS (SELECT * FROM q) AND a > 0",
    "SELECT id FROM r WHERE s IN (SELECT s FROM pl)",
    "SELECT id FROM r WHERE t < (SELECT MAX(t) FROM pl)",
    "SELECT id FROM r WHERE a IN (SELECT a FROM q WHERE a IN (SELECT a FROM pl WHERE k < 5))",
    "SELECT id FROM r WHERE a IN (SELECT q.a FROM q JOIN j ON q.g = j.g)",
    "SELECT k FROM pl WHERE a IN (SELECT p FROM q)",
    "SELECT k FROM pl WHERE EXISTS (SELECT * FROM q WHERE a > 3)",
    "SELECT COUNT( * ), max(a) FROM r WHERE a IN (SELECT a FROM q)",
    "SELECT id FROM r WHERE s = 'it''s \\\\ \\n' OR a IN (SELECT a FROM q)",
    # numbers the target column cannot hold: compared exactly, as MariaDB does
    "SELECT id FROM r WHERE a > (SELECT AVG(a) FROM q)",
    "SELECT id FROM r WHERE a <= (SELECT AVG(a) FROM q)",
    "SELECT id FROM r WHERE a = (SELECT AVG(a) FROM q)",
    "SELECT id FROM r WHERE NOT (a <> (SELECT AVG(a) FROM q))",
    "SELECT id FROM r WHERE a <=> (SELECT AVG(a) FROM q)",
    "SELECT id FROM r WHERE (SELECT AVG(a) FROM q) >= a",
    "SELECT id FROM r WHERE d <= (SELECT AVG(d) FROM r)",
    "SELECT id FROM r WHERE d > (SELECT AVG(d) FROM r) OR d IS NULL",
    "SELECT id FROM r WHERE a < (SELECT SUM(b) FROM r)",
    "SELECT id FROM r WHERE a >= (SELECT MIN(b) FROM r WHERE b > 100)",
    "SELECT id FROM r WHERE a <> (SELECT MIN(b) FROM r WHERE b > 100)",
    "SELECT id FROM r WHERE a IN (SELECT d FROM r)",
    "SELECT id FROM r WHERE NOT (a IN (SELECT a / 2 FROM pl))",
    "SELECT id FROM r WHERE NOT (a IN (SELECT k / 7 FROM pl WHERE k = 1))",
    # a UNION as the subquery
    "SELECT id FROM r WHERE a IN (SELECT a FROM q UNION SELECT k FROM q)",
    "SELECT id FROM r WHERE a = (SELECT MAX(a) FROM q UNION ALL SELECT MIN(k) FROM q)",
    # the constructs together: HAVING in a subquery and in a UNION branch
    "SELECT id FROM r WHERE a IN (SELECT a FROM q GROUP BY a HAVING COUNT(*) > 1)",
    "SELECT id FROM r WHERE a NOT IN (SELECT a FROM q GROUP BY a HAVING MIN(k) < 5)",
    "SELECT a FROM r GROUP BY a HAVING COUNT(*) > 1 UNION SELECT a FROM q",
    "SELECT id FROM r WHERE EXISTS (SELECT a FROM q WHERE k > 50 UNION SELECT g FROM j)",
    "SELECT id FROM r WHERE a IN (SELECT a FROM q) UNION ALL SELECT k FROM q WHERE a = "
    "(SELECT MAX(a) FROM r)",
    # ANY / SOME / ALL: empty, NULLs, numbers the column cannot hold, text
    "SELECT id FROM r WHERE a > ANY (SELECT a FROM q WHERE k > 100)",
    "SELECT id FROM r WHERE a > ALL (SELECT a FROM q WHERE k > 100)",
    "SELECT id FROM r WHERE NOT (a < ALL (SELECT a FROM q))",
    "SELECT id FROM r WHERE a >= SOME (SELECT a FROM q WHERE a IS NULL)",
    "SELECT id FROM r WHERE a = ALL (SELECT a FROM q WHERE k = 3)",
    "SELECT id FROM r WHERE a <> ANY (SELECT a FROM q)",
    "SELECT id FROM r WHERE a <> ALL (SELECT a FROM q)",
    "SELECT id FROM r WHERE a = ANY (SELECT AVG(a) FROM q)",
    "SELECT id FROM r WHERE a < ANY (SELECT AVG(a) FROM q)",
    "SELECT id FROM r WHERE s = ANY (SELECT s FROM pl)",
    "SELECT id FROM r WHERE s <> ALL (SELECT v FROM j)",
    "SELECT id FROM r WHERE t <= ALL (SELECT t FROM q)",
    "SELECT id FROM r WHERE a > ANY (SELECT a, k FROM q)",
    "SELECT id FROM r WHERE a > ANY (SELECT a FROM q LIMIT 2)",
    # in the select list: added to each row by the proxy
    "SELECT id, (SELECT MAX(a) FROM q) FROM r",
    "SELECT id, (SELECT s FROM q WHERE k = 1) AS m, a FROM r WHERE a > 0",
    "SELECT id, (SELECT a FROM q WHERE k > 100), (SELECT MIN(t) FROM q) FROM r ORDER BY id",
    "SELECT a, COUNT(*), (SELECT COUNT(*) FROM j) FROM r GROUP BY a",
    "SELECT DISTINCT (SELECT MAX(k) FROM q), a FROM r",
    "SELECT id, (SELECT a FROM q) FROM r",
    "SELECT id, (SELECT a, k FROM q WHERE k = 1) FROM r",
    "SELECT id, (SELECT MAX(a) FROM q WHERE a IN (SELECT g FROM j)) FROM r WHERE a IN "
    "(SELECT a FROM q)",
    # the same statement after the subquery's rows changed: not answered from a cache
    "SELECT id FROM r WHERE a IN (SELECT a FROM q WHERE k < 4)",
    "UPDATE q SET a = 1 WHERE k < 4",
    "SELECT id FROM r WHERE a IN (SELECT a FROM q WHERE k < 4)",
    "UPDATE r SET a = (SELECT MAX(a) FROM q) WHERE id IN (SELECT k FROM pl)",
    "UPDATE r SET s = 'x' WHERE a IN (SELECT a FROM r WHERE a > 2)",
    "UPDATE r SET a = a + 1 WHERE a IN (SELECT a FROM q)",
    "DELETE FROM r WHERE a = (SELECT a FROM q)",
    "DELETE FROM r WHERE a IN (SELECT a FROM q WHERE k < 4)",
    "DELETE FROM r WHERE NOT EXISTS (SELECT * FROM q WHERE k > 100) AND id < 5",
]


def _seeded(plain: pymysql.Connection, encrypted: EncryptedRunner, seed: int) -> Any:
    work = SubqueryWorkload(seed)
    cur = plain.cursor()
    populate(work, _plain_runner(cur), encrypted.execute, _backend_runner(encrypted))
    with encrypted.conn.cursor() as ecur:
        ecur.execute("INSERT INTO pl VALUES (1, NULL, 'ioTa', NULL)")
    cur.execute("INSERT INTO pl VALUES (1, NULL, 'ioTa', NULL)")
    return cur


def test_subquery_edges(plain: pymysql.Connection, encrypted: EncryptedRunner) -> None:
    cur = _seeded(plain, encrypted, 5)
    for sql in EDGE_CASES:
        p = plain_outcome(cur, sql)
        e = encrypted_outcome(encrypted, sql)
        if sql.startswith("SELECT k FROM pl") and isinstance(p, list):
            p = [tuple(str(v) for v in row) for row in p]  # passed through: the server's text
        ok = p == e if isinstance(p, tuple) or isinstance(e, tuple) else same(p, e, False)
        assert ok, (sql, p, e)
    cur.execute("SELECT * FROM r ORDER BY id")
    assert same(cur.fetchall(), encrypted.execute("SELECT * FROM r ORDER BY id"), True)


@pytest.mark.parametrize(("sql", "word"), REFUSED)
def test_subquery_refusals(
    plain: pymysql.Connection, encrypted: EncryptedRunner, sql: str, word: str
) -> None:
    from proxy.protocol.errors import MysqlError

    _seeded(plain, encrypted, 6)
    with pytest.raises(MysqlError) as e:
        encrypted.execute(sql)
    assert e.value.code == 1235 and word in e.value.message, e.value.message


def test_in_list_cap(plain: pymysql.Connection, encrypted: EncryptedRunner) -> None:
    """Up to MAX_IN_VALUES distinct values become an IN list; more are refused (1235)."""
    from proxy.protocol.errors import MysqlError
    from proxy.rewrite.subquery import MAX_IN_VALUES

    cur = _seeded(plain, encrypted, 13)
    rows = ", ".join(f"({k})" for k in range(MAX_IN_VALUES + 1))
    for run in (_plain_runner(cur), _backend_runner(encrypted)):
        run(f"INSERT INTO pl (k) VALUES {rows}, (NULL), (5)")  # duplicates do not count
    sql = f"SELECT id, a FROM r WHERE a NOT IN (SELECT k - 6 FROM pl WHERE k < {MAX_IN_VALUES})"
    assert same(plain_outcome(cur, sql), encrypted_outcome(encrypted, sql), False)
    with pytest.raises(MysqlError) as e:
        encrypted.execute("SELECT id FROM r WHERE a IN (SELECT k FROM pl)")
    assert e.value.code == 1235 and str(MAX_IN_VALUES) in e.value.message
