"""Derived tables (proxy.rewrite.derived, proxy.rewrite.derived_eval) through the rewriter's
plans (tests/rewrite_support.py's EncryptedRunner) against a plaintext copy on MariaDB: the
seeded workload of tests/derived_workload.py, the edge cases (empty inner results, NULLs,
errors, nesting, constants, a derived table as a subquery), the refusals, the row cap, the
pass-through of derived tables over plain tables, and a scan of the encrypted tables and of
every statement the backend was sent for the plaintext values used.
"""

from __future__ import annotations

from collections import Counter

import pymysql
import pytest

from proxy.protocol.errors import MysqlError
from proxy.rewrite import Derived, PassThrough
from tests import rewrite_support as rs
from tests.derived_workload import REFUSED_DERIVED, DerivedWorkload
from tests.rewrite_workload import BIG, needles, same
from tests.test_rewrite_subquery import _backend_runner, _plain_runner, populate, scan_encrypted

EncryptedRunner = rs.EncryptedRunner
plain_outcome, encrypted_outcome = rs.plain_outcome, rs.encrypted_outcome
STATEMENTS = 400


def _seeded(direct: pymysql.Connection, encrypted: EncryptedRunner, seed: int) -> DerivedWorkload:
    work = DerivedWorkload(seed)
    populate(work, _plain_runner(direct.cursor()), encrypted.execute, _backend_runner(encrypted))
    return work


@pytest.mark.parametrize("seed", [31, 32])
def test_derived_differential(
    direct: pymysql.Connection, encrypted: EncryptedRunner, seed: int
) -> None:
    work = _seeded(direct, encrypted, seed)
    kinds: Counter[str] = Counter()
    with direct.cursor() as cur:
        for n in range(STATEMENTS):
            st = work.insert() if work.rng.random() < 0.1 else work.derived_statement()
            p = rs.compare_outcomes(cur, encrypted, st.sql, st.ordered, (seed, n))
            if p is rs.BOTH_FAILED:
                kinds["both failed"] += 1
                continue
            kinds[st.kind] += 1
            if isinstance(p, list) and p and p != [(0,)]:
                kinds["non-empty"] += 1
    print(f"\nseed {seed}: {dict(kinds)}, peels {encrypted.peels}")
    for kind in ("agg", "ordered", "grouped", "distinct", "rows"):
        assert kinds[kind] > 15, kind
    assert kinds["non-empty"] > STATEMENTS // 3
    assert kinds["both failed"] < STATEMENTS // 10
    wanted = needles(work.used | {str(v) for v in BIG})
    scan_encrypted(encrypted, wanted)
    # Only inner statements reached the server: rewritten, no plaintext text or date in them.
    texts = {v for v in work.used if len(v) >= 5}
    assert [(v, q[:60]) for q in encrypted.backend_sql for v in texts if v in q] == []


EDGE_CASES = [
    # the brief's shapes: Django's count() of a distinct queryset, a page of a sorted inner
    "SELECT COUNT(*) FROM (SELECT DISTINCT s FROM r WHERE a > 3) AS sub",
    "SELECT COUNT(*) FROM (SELECT DISTINCT s FROM r WHERE a > 1000) AS sub",
    "SELECT * FROM (SELECT id, s FROM r ORDER BY s, id LIMIT 10) AS x ORDER BY id",
    "SELECT x.s, COUNT(*) FROM (SELECT s FROM r WHERE a > 0) x GROUP BY x.s HAVING COUNT(*) > 1",
    "SELECT x.s, COUNT(*) AS n FROM (SELECT s FROM r) x GROUP BY 1 HAVING n > 1 ORDER BY n, 1",
    # empty inner results: one ungrouped row, no groups
    "SELECT COUNT(*), SUM(x.a), AVG(x.d), MIN(x.s), MAX(x.t) FROM (SELECT * FROM r WHERE id < 0) x",
    "SELECT x.s, COUNT(*) FROM (SELECT s FROM r WHERE id < 0) x GROUP BY x.s",
    "SELECT * FROM (SELECT a FROM r WHERE id < 0) x",
    # NULLs: skipped by aggregates, grouped together, sorted first, unknown in conditions
    "SELECT COUNT(x.a), COUNT(DISTINCT x.a), COUNT(*) FROM (SELECT a FROM r) x",
    "SELECT x.t, COUNT(*) FROM (SELECT t FROM r) x GROUP BY x.t ORDER BY x.t",
    "SELECT x.a FROM (SELECT a FROM r) x WHERE NOT (x.a IN (1, 2, NULL))",
    "SELECT x.a FROM (SELECT a FROM r) x WHERE x.a <=> NULL",
    "SELECT x.t FROM (SELECT t FROM r) x ORDER BY x.t DESC LIMIT 3",
    # text under utf8mb4_bin: PAD SPACE and code-point order
    "SELECT x.s FROM (SELECT s FROM r) x WHERE x.s < 'gamma' ORDER BY x.s",
    "SELECT x.s FROM (SELECT s FROM r) x WHERE x.s BETWEEN 'B' AND 'b' ORDER BY 1",
    # types: DECIMAL sums and averages, DATETIME(3), UNSIGNED, BIGINT, min=DET
    "SELECT SUM(x.d), AVG(x.d), SUM(x.b), AVG(x.u), MIN(x.dt), MAX(x.m) FROM (SELECT * FROM r) x",
    "SELECT x.m, AVG(x.a) FROM (SELECT m, a FROM r) x GROUP BY x.m ORDER BY x.m",
    "SELECT x.dt FROM (SELECT dt FROM r) x WHERE x.dt >= '2021-05-01 10:05:00.250' ORDER BY 1",
    # aliases and positions, inner and outer; * and x.*
    "SELECT x.s_x AS z FROM (SELECT s AS s_x FROM r) x ORDER BY z DESC",
    "SELECT x.* FROM (SELECT id, p FROM r) x ORDER BY 2, 1 LIMIT 2, 3",
    "SELECT id AS k, x.id FROM (SELECT id FROM r) x ORDER BY k LIMIT 4 OFFSET 1",
    # materialized inner: GROUP BY, aggregates, UNION, LIMIT
    "SELECT * FROM (SELECT s, COUNT(*) AS n, MAX(a) AS mx FROM r GROUP BY s) x WHERE x.n > 1",
    "SELECT MAX(x.n) FROM (SELECT t, COUNT(*) AS n FROM r GROUP BY t) x",
    "SELECT COUNT(*) FROM (SELECT a FROM r UNION SELECT a FROM q) u",
    "SELECT u.s FROM (SELECT s FROM r UNION ALL SELECT v FROM j) u WHERE u.s > 'a' ORDER BY 1",
    "SELECT * FROM (SELECT a FROM r ORDER BY a, id LIMIT 0) x",
    # nesting, constants, a subquery inside the inner statement
    "SELECT COUNT(*) FROM (SELECT * FROM (SELECT a, s FROM r WHERE a > 0) y WHERE y.a < 5) z",
    "SELECT * FROM (SELECT * FROM (SELECT id, s FROM r ORDER BY id LIMIT 3) y) x",
    "SELECT 1 AS a FROM (SELECT DISTINCT s FROM r) x LIMIT 1",
    "SELECT 'k', 2.50, NULL, x.a FROM (SELECT a FROM r) x ORDER BY 4 LIMIT 2",
    "SELECT COUNT(*) FROM (SELECT id FROM r WHERE a IN (SELECT a FROM q)) x",
    # a derived table as a subquery; as a UNION branch
    "SELECT id FROM r WHERE a IN (SELECT x.a FROM (SELECT a FROM q WHERE k > 3) x)",
    "SELECT id FROM r WHERE s = (SELECT MAX(x.v) FROM (SELECT v FROM j) x)",
    "SELECT x.a FROM (SELECT a FROM r) x UNION SELECT a FROM q",
    # MariaDB's errors
    "SELECT nosuch FROM (SELECT a FROM r) x",
    "SELECT y.a FROM (SELECT a FROM r) x",
    "SELECT * FROM (SELECT a, a FROM r) x",
    "SELECT x.a FROM (SELECT a FROM r) x WHERE COUNT(*) > 1",
    "SELECT x.a FROM (SELECT a FROM r) x ORDER BY 2",
    "SELECT * FROM (SELECT nosuch FROM r) x",
    # rows handed on as they are (MariaDB's 1093 workaround, Django's DELETE): the server
    # selected them, so a plain column's values may reach it
    "SELECT id FROM r WHERE p IN (SELECT * FROM (SELECT p FROM q WHERE a > 1) AS x)",
    "UPDATE r SET s = 'zeta' WHERE id IN (SELECT x.id FROM (SELECT id FROM r WHERE a > 2) AS x)",
    "DELETE FROM r WHERE id IN (SELECT * FROM (SELECT id FROM r WHERE a > 3) AS sub)",
]


def test_derived_edges(direct: pymysql.Connection, encrypted: EncryptedRunner) -> None:
    _seeded(direct, encrypted, 5)
    cur = direct.cursor()
    for sql in EDGE_CASES:
        p, e = plain_outcome(cur, sql), encrypted_outcome(encrypted, sql)
        ordered = "ORDER BY" in sql.rsplit(")", 1)[-1]
        ok = p == e if isinstance(p, tuple) or isinstance(e, tuple) else same(p, e, ordered)
        assert ok, (sql, p, e)


def test_derived_refusals(direct: pymysql.Connection, encrypted: EncryptedRunner) -> None:
    """1235, naming what is not supported; the refused statements change nothing."""
    _seeded(direct, encrypted, 6)
    before = encrypted.execute("SELECT * FROM r ORDER BY id")
    for sql, word in REFUSED_DERIVED:
        try:
            encrypted.execute(sql)
        except MysqlError as e:
            assert e.code == 1235 and word in e.message, (sql, e.message)
        else:
            raise AssertionError(f"not refused: {sql}")
    assert encrypted.execute("SELECT * FROM r ORDER BY id") == before


def test_row_cap(
    direct: pymysql.Connection, encrypted: EncryptedRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inner statement is read with LIMIT MAX_ROWS + 1; more rows are refused."""
    from proxy.rewrite import derived

    _seeded(direct, encrypted, 7)
    monkeypatch.setattr(derived, "MAX_ROWS", 5)
    plan = encrypted.plan("SELECT COUNT(*) FROM (SELECT a FROM r) x")
    assert isinstance(plan, Derived) and plan.inner[0].endswith("LIMIT 6")
    with pytest.raises(MysqlError) as e:
        encrypted.execute("SELECT COUNT(*) FROM (SELECT a FROM r) x")
    assert e.value.code == 1235 and "more than 5 rows" in e.value.message
    small = "SELECT COUNT(*) FROM (SELECT a FROM r ORDER BY id LIMIT 5) x"
    assert encrypted.execute(small) == plain_outcome(direct.cursor(), small)


def test_plain_derived_tables_pass_through(encrypted: EncryptedRunner) -> None:
    _backend_runner(encrypted)("CREATE TABLE pl (k INT, s VARCHAR(9))")
    for sql in (
        "SELECT COUNT(*) FROM (SELECT DISTINCT s FROM pl WHERE k > 3) AS sub",
        "SELECT x.s, COUNT(*) FROM (SELECT s FROM pl) x GROUP BY x.s HAVING COUNT(*) > 1",
    ):
        assert isinstance(encrypted.plan(sql), PassThrough), sql
