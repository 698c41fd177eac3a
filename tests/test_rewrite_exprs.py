"""Select-list expressions evaluated by the proxy (proxy.rewrite.exprs), through the
rewriter's plans against a plaintext copy on MariaDB: tests/expr_workload.py's seeded
expressions (arithmetic on INT / UNSIGNED / DECIMAL, text functions, COALESCE / IF / CASE,
date parts) compared value by value as the text protocol carries them, and column
definition by column definition (type, length, decimals, flags, charset, names); edge
cases; refusals; the plan cache; a scan of the encrypted table for the plaintext values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from pymysql.constants import CLIENT

from proxy.devbackend import DevBackend
from proxy.protocol.errors import MysqlError
from proxy.rewrite import Execute, PassThrough
from tests.expr_workload import DDL, PROXY_REFUSALS, REFUSED_EXPRS, ExprWorkload
from tests.rewrite_support import EncryptedRunner, connect, field_definitions
from tests.rewrite_workload import needles
from tests.test_rewrite_subquery import scan_encrypted

STATEMENTS = 250


@pytest.fixture
def plain(backend: DevBackend, database: str) -> Iterator[pymysql.Connection]:
    # conv={}: values as the server sends them, compared with the proxy's text rows
    conn = connect(backend, database, conv={}, client_flag=CLIENT.FOUND_ROWS)
    yield conn
    conn.close()


def _definitions(defs: list[Any]) -> list[tuple[Any, ...]]:
    return [
        (d.name, d.type, d.length, d.decimals, d.flags, d.charset, d.table, d.org_name)
        for d in defs
    ]


def outcome(cur: Any, runner: EncryptedRunner, sql: str) -> tuple[Any, Any]:
    """(plaintext side, encrypted side): ("error", code), or (definitions, rows as bytes)."""
    try:
        cur.execute(sql)
        rows = [tuple(v.encode() if isinstance(v, str) else v for v in r) for r in cur.fetchall()]
        p: Any = (_definitions(field_definitions(cur)), rows)
    except pymysql.MySQLError as e:
        p = ("error", e.args[0])
    try:
        decoder, values = runner.decoded(sql)
        e_rows = [
            tuple(c.encode(v) for c, v in zip(decoder.columns, r, strict=True)) for r in values
        ]
        e: Any = (_definitions(decoder.definitions()), e_rows)
    except MysqlError as err:
        e = ("error", err.code, err.message)
    except pymysql.MySQLError as err:
        e = ("error", err.args[0])
    return p, e


def compare(cur: Any, runner: EncryptedRunner, sql: str, ordered: bool, where: Any) -> str:
    p, e = outcome(cur, runner, sql)
    at = (where, sql, p, e)
    if p[0] == "error":
        assert e[:2] == p, at
        return "both failed"
    if e[0] == "error" and e[1] == 1235 and any(w in e[2] for w in PROXY_REFUSALS):
        return "refused"
    assert e[0] != "error", at
    assert p[0] == e[0], at  # every column definition
    if ordered:
        assert p[1] == e[1], at
    else:
        assert Counter(p[1]) == Counter(e[1]), at
    return "ordered" if ordered else "rows"


def _load(plain: pymysql.Connection, runner: EncryptedRunner, work: ExprWorkload, n: int) -> None:
    with plain.cursor() as cur:
        cur.execute(DDL)
        runner.execute(DDL)
        for _ in range(n):
            sql = work.insert()
            cur.execute(sql)
            runner.execute(sql)


@pytest.mark.parametrize("seed", [51, 52])
def test_exprs_differential(
    plain: pymysql.Connection, encrypted: EncryptedRunner, seed: int
) -> None:
    work = ExprWorkload(seed)
    _load(plain, encrypted, work, 30)
    kinds: Counter[str] = Counter()
    with plain.cursor() as cur:
        for n in range(STATEMENTS):
            if n % 50 == 49:  # more rows as the statements go
                sql = work.insert()
                cur.execute(sql)
                encrypted.execute(sql)
            sql, ordered = work.select()
            kinds[compare(cur, encrypted, sql, ordered, (seed, n))] += 1
    print(f"\nseed {seed}: {dict(kinds)}")
    assert kinds["rows"] + kinds["ordered"] > STATEMENTS * 3 // 4
    scan_encrypted(encrypted, needles(work.used), tables=("x",))


# Values at the edges, on rows chosen for them: exact results and MariaDB's errors.
EDGE_ROWS = [
    "INSERT INTO x (a, b, ti, u, bu, d, e, ud, s, c, g, t, dt) VALUES"
    " (-2147483648, 9223372036854775807, -128, 0, 18446744073709551615, -0.01, -5,"
    " 0.001, 'Hello ', 'ab', 'MiXed', '2020-02-29', '2021-12-31 23:59:59.999')",
    "INSERT INTO x (a, b, ti, u, bu, d, e, ud, s, c, g) VALUES"
    " (7, -9223372036854775808, 127, 65535, 0, 999999.99, 0, 999.999, '', ' x', '')",
    "INSERT INTO x (b, g) VALUES (0, 'z')",
]
EDGE_CASES = [
    "SELECT b + 1 FROM x",  # BIGINT overflow: 1690
    "SELECT b - 1 FROM x",
    "SELECT -b FROM x",
    "SELECT ABS(b) FROM x",
    "SELECT u - 1 FROM x",  # BIGINT UNSIGNED below 0: 1690
    "SELECT bu + 1 FROM x",
    "SELECT a * 2, a DIV 0, a MOD 0, a / 0, d / 0, e DIV 3, e MOD -3 FROM x ORDER BY id",
    "SELECT d / 3, d / 7 / 3, a / 7 * 100, d * d * d, ud / ud, d MOD 0.7 FROM x ORDER BY id",
    "SELECT e MOD 5, -e MOD 5, d MOD 0.01, -d * 0, ROUND(d, 1), ROUND(-d, -2) FROM x ORDER BY id",
    "SELECT ROUND(a, -1), ROUND(ti, -2), FLOOR(d), CEIL(d), FLOOR(ud), CEIL(ud) FROM x ORDER BY id",
    "SELECT FLOOR(bu / 3), CEIL(b / 7), FLOOR(a / 3) FROM x ORDER BY id",
    "SELECT CONCAT(s, '|', c, '|', g), CONCAT_WS('-', s, NULL, c), CONCAT(a, d, t, dt) FROM x",
    "SELECT UPPER(s), LOWER(g), LENGTH(s), CHAR_LENGTH(c), TRIM(s), RTRIM(s), LTRIM(c) FROM x",
    "SELECT SUBSTRING(s, 2), SUBSTRING(s, -2, 1), SUBSTRING(s, 0), LEFT(g, 2), RIGHT(g, 0) FROM x",
    "SELECT COALESCE(a, b), IFNULL(d, 0), NULLIF(a, 7), COALESCE(u, -1), COALESCE(s, '-') FROM x",
    "SELECT IF(a > 0, 'pos', 'neg'), CASE WHEN a IS NULL THEN 0 WHEN a < 0 THEN -1 END FROM x",
    "SELECT IF(s = 'hello', 1, 0), IF(g = 'mixed', 1, 0), IF(s <=> NULL, 1, 0) FROM x ORDER BY id",
    "SELECT YEAR(t), MONTH(dt), DAY(t), DATE(dt), COALESCE(t, t) FROM x ORDER BY id",
    "SELECT a + 1 AS n, id FROM x ORDER BY n DESC, id",  # the proxy sorts the computed values
    "SELECT CONCAT(s, 'x') AS k FROM x ORDER BY k, id",
    "SELECT a+1, a + 1, ( a*2 ), upper( s ) FROM x ORDER BY id",  # named as written
    "SELECT p * 2, p + a FROM x ORDER BY id",  # a plain column: in the proxy too
]


def test_exprs_edge_cases(plain: pymysql.Connection, encrypted: EncryptedRunner) -> None:
    work = ExprWorkload(1)
    _load(plain, encrypted, work, 0)
    with plain.cursor() as cur:
        for sql in EDGE_ROWS:
            cur.execute(sql)
            encrypted.execute(sql)
        kinds = Counter(compare(cur, encrypted, sql, "ORDER BY" in sql, i)
                        for i, sql in enumerate(EDGE_CASES))  # fmt: skip
    assert kinds["both failed"] == 6, kinds  # the overflows


def test_exprs_refusals(plain: pymysql.Connection, encrypted: EncryptedRunner) -> None:
    _load(plain, encrypted, ExprWorkload(2), 3)
    for sql, word in REFUSED_EXPRS:
        with pytest.raises(MysqlError) as e:
            encrypted.decoded(sql)
        assert e.value.code == 1235 and word in e.value.message, (sql, e.value.message)
    # A value only known per row: UPPER of non-ASCII text is refused when decoded.
    encrypted.execute("INSERT INTO x (s) VALUES ('straße')")
    with pytest.raises(MysqlError) as e:
        encrypted.decoded("SELECT UPPER(s) FROM x")
    assert e.value.code == 1235 and "non-ASCII" in e.value.message


def test_exprs_plan(plain: pymysql.Connection, encrypted: EncryptedRunner) -> None:
    """The backend reads the columns only; constants stay in the proxy; a plan with a
    constant is not cached (its metadata follows the constant); one without is."""
    _load(plain, encrypted, ExprWorkload(3), 2)
    plan = encrypted._settled("SELECT CONCAT(s, 'secret words') FROM x WHERE a > 0")
    assert isinstance(plan, Execute) and plan.sql is not None
    assert "secret" not in plan.sql and "CONCAT" not in plan.sql, plan.sql
    rewriter = encrypted.rewriter
    encrypted.decoded("SELECT a + 1 FROM x")
    misses = rewriter.misses
    encrypted.decoded("SELECT a + 100000000000 FROM x")
    assert rewriter.misses == misses + 1
    with plain.cursor() as cur:  # not the first statement's length (12): MariaDB's 14
        p, e = outcome(cur, encrypted, "SELECT a + 100000000000 FROM x")
    assert p == e and p[0][0][2] == 14, (p, e)
    encrypted.decoded("SELECT a * b FROM x")
    hits = rewriter.hits
    encrypted.decoded("SELECT a * b FROM x")
    assert rewriter.hits == hits + 1
    # A table the proxy did not create: passed through as before.
    with plain.cursor() as cur:
        cur.execute("CREATE TABLE other (a INT)")
    encrypted.conn.select_db(plain.db.decode())
    try:
        assert isinstance(encrypted.rewriter.plan(
            "SELECT a + 1 FROM other", schema=encrypted.schema, crypto=encrypted.crypto,
            database=plain.db.decode()), PassThrough)  # fmt: skip
    finally:
        encrypted.conn.select_db(encrypted.database)
