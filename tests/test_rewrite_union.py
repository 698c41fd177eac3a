"""UNION [ALL | DISTINCT] combined by the proxy (proxy.rewrite.union), through the rewriter's
plans against a plaintext copy on MariaDB: tests/union_workload.py's seeded statements over
three encrypted tables (NULLs, duplicates across and within branches, text under a binary
collation, dates, aggregates, branches with their own ORDER BY / LIMIT, an outer ORDER BY /
LIMIT / OFFSET, subqueries in a branch), interleaved with writes; the refusals; a scan of
the encrypted tables for every plaintext value used.
"""

from __future__ import annotations

from collections import Counter

import pymysql
import pytest

from proxy.protocol.errors import MysqlError
from tests.rewrite_support import (
    BOTH_FAILED,
    EncryptedRunner,
    compare_outcomes,
    encrypted_outcome,
    plain_outcome,
)
from tests.rewrite_workload import BIG, needles
from tests.test_rewrite_subquery import _backend_runner, _plain_runner, populate, scan_encrypted
from tests.union_workload import REFUSED_UNION, UnionWorkload

STATEMENTS = 300


@pytest.mark.parametrize("seed", [51, 52])
def test_union_differential(
    plain: pymysql.Connection, encrypted: EncryptedRunner, seed: int
) -> None:
    work = UnionWorkload(seed)
    kinds: Counter[str] = Counter()
    with plain.cursor() as cur:
        populate(work, _plain_runner(cur), encrypted.execute, _backend_runner(encrypted))
        for n in range(STATEMENTS):
            roll = work.rng.random()
            if roll < 0.1:
                st = work.insert()
            elif roll < 0.15:
                st = work.update()
            else:
                st = work.union_statement()
            p = compare_outcomes(cur, encrypted, st.sql, st.ordered, (seed, n))
            if p is BOTH_FAILED:
                kinds["both failed"] += 1
                continue
            kinds[st.kind] += 1
            if "UNION" in st.sql and p:
                kinds["union, non-empty"] += 1
    print(f"\nseed {seed}: {dict(kinds)}")
    assert kinds["union, non-empty"] > 150 and kinds["ordered"] > 60
    assert kinds["both failed"] < 10
    scan_encrypted(encrypted, needles(work.used | {str(v) for v in BIG}))


@pytest.mark.parametrize(("sql", "word"), REFUSED_UNION)
def test_union_refusals(
    plain: pymysql.Connection, encrypted: EncryptedRunner, sql: str, word: str
) -> None:
    work = UnionWorkload(9)
    with plain.cursor() as cur:
        populate(work, _plain_runner(cur), encrypted.execute, _backend_runner(encrypted))
    with pytest.raises(MysqlError) as e:
        encrypted.execute(sql)
    assert e.value.code == 1235 and word in e.value.message, e.value.message


def test_union_errors(plain: pymysql.Connection, encrypted: EncryptedRunner) -> None:
    """MariaDB's errors, with its codes."""
    work = UnionWorkload(10)
    with plain.cursor() as cur:
        populate(work, _plain_runner(cur), encrypted.execute, _backend_runner(encrypted))
        for sql in [
            "SELECT a, s FROM r UNION SELECT k FROM q",
            "SELECT a FROM r UNION SELECT k FROM q ORDER BY nosuch",
            "SELECT a FROM r UNION SELECT k FROM q ORDER BY 2",
        ]:
            p = plain_outcome(cur, sql)
            assert isinstance(p, tuple) and p == encrypted_outcome(encrypted, sql), sql
