"""The differential oracle through the LIVE proxy: the seeded workload of
tests/rewrite_workload.py runs through `cryptdb serve` (PyMySQL, utf8mb4, autocommit,
CLIENT_FOUND_ROWS) on an encrypted table and straight on MariaDB on a plaintext copy.
Results (values and their Python types, as multisets unless ORDER BY orders them fully),
result metadata (names, tables, types, lengths, decimals, flags, charset), affected rows,
insert ids and errors must agree; the proxy never refuses (1235, 7001-7004) a generated
statement. Afterwards every anonymized backend table is read straight from MariaDB, and its
flushed InnoDB file scanned, for every plaintext value the workload used: 0 hits (the same
file scan of the plaintext copy finds them).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from pymysql.constants import CLIENT

from proxy.devbackend import DevBackend
from tests.conftest import ProxyProcess
from tests.rewrite_support import connect, extra_database
from tests.rewrite_workload import BIG, DDL, Workload, needles, same

SEEDS = [101, 102, 103, 104, 105]
STATEMENTS = 1000  # per seed, plus ERRORS every ERROR_EVERY statements
ERROR_EVERY = 40
REFUSALS = {1235} | set(range(7000, 7100))  # unsupported, policy, constant, session

# Statements that fail on plaintext MariaDB: the proxy must fail them too, with MariaDB's
# code, or 7002 where it documents stricter constants (docs/rewrite.md).
ERRORS = [
    ("INSERT INTO r (id, b) VALUES (1, 1), (1, 2)", {1062}),  # duplicate key
    ("INSERT INTO r (b) VALUES (NULL)", {1048}),
    ("INSERT INTO r (u) VALUES (-1)", {1264}),
    ("INSERT INTO r (a) VALUES (3000000000)", {1264}),
    ("INSERT INTO r (s) VALUES ('abcdefghijklmnopqrstuvwxyz')", {1406}),
    ("INSERT INTO r (d) VALUES (1000000)", {1264}),
    ("INSERT INTO r (a) VALUES ('not a number')", {1366, 7002}),
    ("INSERT INTO r (t) VALUES ('2020-13-01')", {1292, 7002}),
    ("INSERT INTO r (nosuch) VALUES (1)", {1054}),
    ("SELECT nosuch FROM r", {1054}),
    ("SELECT a FROM r WHERE nosuch = 1", {1054}),
    ("SELECT a FROM nosuch", {1146}),
    ("UPDATE r SET u = u - 65535 WHERE u IS NOT NULL", {1690, 1264}),  # below UNSIGNED
    ("UPDATE r SET a = a + 2147483647 WHERE a > 0", {1264}),
]
# Column flags MariaDB reports for GROUP BY / DISTINCT results come from its temporary table
# (key flags dropped, GROUP_FLAG in NUM_FLAG's bit, no BINARY on COUNT / SUM): only these are
# compared there.
GROUPED_FLAGS = 1 | 32  # NOT_NULL, UNSIGNED

# Constructs the seeds' successful statements must exercise, at least 5 times (name: pattern).
CONSTRUCTS = {
    "insert": r"^INSERT",
    "multi-row insert": r"^INSERT .*\), \(",
    "update constant": r"^UPDATE r SET \w+ = '?-?\w",
    "update increment": r"^UPDATE r SET .*\b(\w+) = \1 [+-] \d+(,|$| WHERE)",
    "update fractional increment": r"^UPDATE r SET .*\b(\w+) = \1 [+-] \d\.\d",
    "delete": r"^DELETE",
    "equality": r"\w`? (=|<>) ",
    "null-safe equality": r"<=>",
    "IN": r"(?i) in \(",
    "NOT IN": r"(?i) not in \(",
    "IS NULL": r"(?i) is null",
    "IS NOT NULL": r"(?i) is not null",
    "range": r" (<|<=|>|>=) ",
    "BETWEEN": r"(?i) between ",
    "NOT BETWEEN": r"(?i) not between ",
    "LIKE": r"(?i) like '%",
    "AND": r"(?i) and ",
    "OR": r"(?i) or ",
    "NOT (": r"(?i)not \(",
    "ORDER BY": r"(?i) order by ",
    "ORDER BY DESC": r"(?i) desc",
    "LIMIT": r"(?i) limit \d",
    "OFFSET": r"(?i) offset \d",
    "COUNT(*)": r"(?i)count\(\*\)",
    "COUNT(col)": r"(?i)count\([`\w.]+\)",
    "COUNT(DISTINCT)": r"(?i)count\(distinct ",
    "SUM": r"(?i)sum\(",
    "AVG": r"(?i)avg\(",
    "MIN": r"(?i)min\(",
    "MAX": r"(?i)max\(",
    "GROUP BY": r"(?i) group by ",
    "DISTINCT": r"(?i)select distinct ",
    "SELECT *": r"^SELECT \* ",
    "backticks": r"`",
    "alias": r"(?i)from r as x",
    "qualified": r"\br\.\w",
    "lower-case keywords": r"^select ",
}
COVERED: Counter[str] = Counter()  # over the seeds that ran ("statements": seeds)



@pytest.fixture
def encrypted_db(backend: DevBackend) -> Iterator[str]:
    with extra_database(backend, "penc") as name:
        yield name


def _run(conn: pymysql.Connection, sql: str) -> tuple[str, Any, Any]:
    """("ok", rows, metadata) for a result set, ("ok", affected rows, insert id) otherwise,
    ("error", code, message) for an error."""
    with conn.cursor() as cur:
        try:
            cur.execute(sql)
        except pymysql.MySQLError as e:
            return "error", e.args[0], e.args[1] if len(e.args) > 1 else ""
        if cur.description:
            rows = [tuple((type(v).__name__, v) for v in row) for row in cur.fetchall()]
            return "ok", rows, _metadata(cur, sql)
        return "ok", cur.rowcount, cur.lastrowid


def _metadata(cur: Any, sql: str) -> list[tuple[Any, ...]]:
    grouped = re.search(r"(?i)\b(group by|distinct)\b", sql) is not None
    return [
        (
            _name(f.name),
            f.db,
            f.table_name,
            f.org_table,
            f.org_name,
            f.type_code,
            f.length,
            f.flags & GROUPED_FLAGS if grouped else f.flags,
            f.scale,
            f.charsetnr,
        )
        for f in cur._result.fields  # the column definitions as sent (cursor.description+)
    ]


def _name(name: str) -> str:
    """A column's name exactly, aggregates included (named as the statement spells them)."""
    return name


@pytest.mark.parametrize("seed", SEEDS)
def test_differential_through_the_proxy(
    backend: DevBackend, encrypted_proxy: ProxyProcess, database: str, encrypted_db: str, seed: int
) -> None:
    start = time.perf_counter()
    kinds = _one_seed(backend, encrypted_proxy, database, encrypted_db, seed)
    elapsed = time.perf_counter() - start
    print(f"\nseed {seed} through the proxy: {dict(kinds)} in {elapsed:.1f}s")
    assert kinds["statements"] == STATEMENTS + STATEMENTS // ERROR_EVERY


def test_enough_statements_and_every_construct() -> None:
    """Runs after the seeds (pytest keeps definition order)."""
    assert len(SEEDS) * STATEMENTS >= 2000
    if COVERED["statements"] < len(SEEDS):
        pytest.skip("not every seed ran")
    assert [name for name in CONSTRUCTS if COVERED[name] < 5] == []


def _names(p: ProxyProcess, db: str, sql: str) -> list[str]:
    conn = p.connect(db, autocommit=True, charset="utf8mb4")
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS n (a INT, b DECIMAL(6,2))")
            cur.execute(sql)
            return [d[0] for d in cur.description]
    finally:
        conn.close()


def test_columns_named_as_written(encrypted_proxy: ProxyProcess, encrypted_db: str) -> None:
    """MariaDB names a result column as the select list spells it, not as declared."""
    sql = "SELECT A, x.`b`, x.A AS `Q` FROM n AS x"
    assert _names(encrypted_proxy, encrypted_db, sql) == ["A", "b", "Q"]


def test_aggregate_named_as_written(encrypted_proxy: ProxyProcess, encrypted_db: str) -> None:
    sql = "SELECT count( a ), Sum(`b`), max(A) FROM n"
    assert _names(encrypted_proxy, encrypted_db, sql) == ["count( a )", "Sum(`b`)", "max(A)"]


def _db(meta: Any, db: str) -> Any:
    """Metadata with the database's name as "<db>" (the two copies' names differ)."""
    if not isinstance(meta, list):
        return meta
    return [(m[0], "<db>" if m[1] == db.encode() else m[1], *m[2:]) for m in meta]


def compare_through_proxy(
    plain: pymysql.Connection, enc: pymysql.Connection, sql: str, ordered: bool, where: Any,
    plain_db: str, enc_db: str, insert_ids: bool = True,
) -> tuple[str, Any]:
    """One statement on the plaintext copy and through the proxy: the same error code on both
    sides, or equal results (multisets unless `ordered`) and result metadata (and the last
    insert id, unless not `insert_ids`). (status, the plaintext side's result)."""
    p_status, p_result, p_extra = _run(plain, sql)
    e_status, e_result, e_extra = _run(enc, sql)
    at = (where, sql, p_result, p_extra, e_result, e_extra)
    assert p_status == e_status, at
    if p_status == "error":
        assert p_result == e_result, at
        return p_status, p_result
    assert same(p_result, e_result, ordered), at
    if insert_ids or isinstance(p_result, list):  # metadata, or the last insert id
        assert _db(p_extra, plain_db) == _db(e_extra, enc_db), at
    return p_status, p_result


def _one_seed(
    backend: DevBackend, p: ProxyProcess, plain_db: str, enc_db: str, seed: int
) -> Counter[str]:
    work = Workload(seed)
    enc = p.connect(enc_db, autocommit=True, charset="utf8mb4", client_flag=CLIENT.FOUND_ROWS)
    plain = connect(backend, plain_db, charset="utf8mb4", client_flag=CLIENT.FOUND_ROWS)
    kinds: Counter[str] = Counter()
    seen: Counter[str] = Counter(statements=1)
    try:
        assert _run(plain, DDL)[0] == "ok"
        assert _run(enc, DDL)[0] == "ok"
        for n in range(STATEMENTS + STATEMENTS // ERROR_EVERY):
            if n % (ERROR_EVERY + 1) == ERROR_EVERY:
                sql, codes = ERRORS[(n // (ERROR_EVERY + 1)) % len(ERRORS)]
                p_status, p_code, p_msg = _run(plain, sql)
                e_status, e_code, e_msg = _run(enc, sql)
                assert p_status == e_status, (seed, n, sql, p_msg, e_msg)
                if p_status == "error":  # (an UPDATE matching no row succeeds)
                    assert p_code in codes and e_code in codes, (seed, n, sql, p_msg, e_msg)
                else:
                    assert (p_code, p_msg) == (e_code, e_msg), (seed, n, sql)
                kinds["statements"] += 1
                kinds["both failed" if p_status == "error" else "update"] += 1
                continue
            st = work.insert() if n < 15 else work.statement()
            p_status, p_result, p_extra = _run(plain, st.sql)
            e_status, e_result, e_extra = _run(enc, st.sql)
            where = (seed, n, st.sql)
            if e_status == "error":
                assert e_result not in REFUSALS, (*where, e_result, e_extra)
            assert p_status == e_status, (*where, p_result, p_extra, e_result, e_extra)
            kinds["statements"] += 1
            if p_status == "error":
                kinds["both failed"] += 1
                continue
            assert same(p_result, e_result, st.ordered), (*where, p_result, e_result)
            assert _db(p_extra, plain_db) == _db(e_extra, enc_db), (*where, p_extra, e_extra)
            kinds[st.kind] += 1
            for name, pattern in CONSTRUCTS.items():
                if re.search(pattern, st.sql):
                    seen[name] += 1
        final = _run(plain, "SELECT * FROM r ORDER BY id")
        assert final[:2] == _run(enc, "SELECT * FROM r ORDER BY id")[:2]
        assert final[1], "the workload left no rows"
    finally:
        enc.close()
        plain.close()
    COVERED.update(seen)
    assert kinds["rows"] + kinds["ordered"] > STATEMENTS // 3
    assert kinds["both failed"] >= STATEMENTS // ERROR_EVERY - 3
    wanted = needles(work.used | {str(v) for v in BIG})
    _scan_backend(backend, enc_db, wanted)
    # Control: the same scan of the plaintext copy finds (at least) every text value it holds.
    texts = [v.encode() for row in final[1] for _, v in row[3:5] if v is not None]  # s, w
    held = {t for t in texts if len(t) >= 5}
    assert held and held <= set(_file_hits(backend, plain_db, "r", wanted))
    return kinds


def _scan_backend(backend: DevBackend, db: str, wanted: set[bytes]) -> None:
    """Every anonymized table as MariaDB holds it: no plaintext in its encrypted columns
    (plain ones, c<id> without an onion suffix, hold the AUTO_INCREMENT id and the
    'cryptdb: plain' column), none anywhere in its InnoDB file."""
    conn = connect(backend, db)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW TABLES")
            tables = sorted(r[0] for r in cur.fetchall())
            anonymized = [t for t in tables if re.fullmatch(r"t_\d+", t)]
            assert anonymized and set(tables) - set(anonymized) == {"_cryptdb_layers"}, tables
            for table in anonymized:
                cur.execute(f"SELECT * FROM `{table}`")
                names = [d[0] for d in cur.description]
                assert all(re.fullmatch(r"c\d+(_eq|_ord|_add|_search|_iv)?", n) for n in names)
                rows = cur.fetchall()
                assert rows
                hits = [
                    (name, needle)
                    for row in rows
                    for name, cell in zip(names, row, strict=True)
                    if "_" in name and cell is not None
                    for needle in wanted
                    if needle in (cell if isinstance(cell, bytes) else str(cell).encode())
                ]
                assert hits == [], (table, hits[:5])
    finally:
        conn.close()
    for table in anonymized:
        assert _file_hits(backend, db, table, wanted) == [], table


def _file_hits(backend: DevBackend, db: str, table: str, wanted: set[bytes]) -> list[bytes]:
    conn = connect(backend, db)
    try:
        with conn.cursor() as cur:
            cur.execute(f"FLUSH TABLES `{table}` FOR EXPORT")
            try:
                data = Path(backend.datadir, db, f"{table}.ibd").read_bytes()
            finally:
                cur.execute("UNLOCK TABLES")
    finally:
        conn.close()
    assert len(data) > 16384
    return [n for n in wanted if n in data]


CONSTANT_ITEMS = [
    "SELECT 1 AS a FROM t WHERE s = 'x' LIMIT 1",  # Django's exists()
    "SELECT 1 AS one FROM t WHERE k = 2 LIMIT 1",  # Rails' exists?
    "SELECT 1 FROM t",
    "SELECT (1) AS a, -5, 2.50, 'xy', 'héllo' AS h, NULL, 12345678901, k FROM t ORDER BY k",
    "SELECT DISTINCT 7 AS seven, s FROM t",
    "SELECT 'n', COUNT(*), SUM(k) FROM t WHERE k > 1",
    "SELECT s, 0 AS z FROM t WHERE k IN (1, 3) ORDER BY s DESC",
]


def test_constants_in_the_select_list(
    backend: DevBackend, encrypted_proxy: ProxyProcess, database: str, encrypted_db: str
) -> None:
    """Made by the proxy with MariaDB's metadata, the rows counted by the backend."""
    enc = encrypted_proxy.connect(encrypted_db, autocommit=True, charset="utf8mb4")
    plain = connect(backend, database, charset="utf8mb4")
    try:
        for conn in (plain, enc):
            _run(conn, "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, k INT, s VARCHAR(9))")
            _run(conn, "INSERT INTO t (k, s) VALUES (1, 'x'), (2, 'y'), (3, 'x'), (NULL, NULL)")
        for sql in CONSTANT_ITEMS:
            status, result = compare_through_proxy(
                plain, enc, sql, "ORDER BY" in sql, "constants", database, encrypted_db
            )
            assert status == "ok" and result, sql
    finally:
        enc.close()
        plain.close()
