"""HAVING evaluated by the proxy (proxy.rewrite.having), through the rewriter's plans against
a plaintext copy on MariaDB: tests/having_workload.py's seeded GROUP BY ... HAVING
statements (aggregates selected or not, aliases, grouped columns of every kind, NULL groups,
ORDER BY / LIMIT / OFFSET after the filter), interleaved with the usual writes; the
refusals; a scan of the encrypted table for every plaintext value used.
"""

from __future__ import annotations

from collections import Counter

import pymysql
import pytest

from proxy.protocol.errors import MysqlError
from tests.having_workload import REFUSED_HAVING, HavingWorkload
from tests.rewrite_support import (
    BOTH_FAILED,
    EncryptedRunner,
    compare_outcomes,
)
from tests.rewrite_workload import BIG, DDL, needles
from tests.test_rewrite_subquery import scan_encrypted

STATEMENTS = 400


@pytest.mark.parametrize("seed", [31, 32])
def test_having_differential(
    plain: pymysql.Connection, encrypted: EncryptedRunner, seed: int
) -> None:
    work = HavingWorkload(seed)
    kinds: Counter[str] = Counter()
    with plain.cursor() as cur:
        cur.execute(DDL)
        encrypted.execute(DDL)
        for n in range(STATEMENTS):
            roll = work.rng.random()
            if n < 20 or roll < 0.15:
                st = work.insert()
            elif roll < 0.2:
                st = work.update()
            elif roll < 0.22:
                st = work.delete()
            else:
                st = work.having_statement()
            p = compare_outcomes(cur, encrypted, st.sql, st.ordered, (seed, n))
            if p is BOTH_FAILED:
                kinds["both failed"] += 1
                continue
            kinds[st.kind] += 1
            if "HAVING" in st.sql and p:
                kinds["having, non-empty"] += 1
    print(f"\nseed {seed}: {dict(kinds)}")
    assert kinds["having, non-empty"] > 100 and kinds["ordered"] > 50
    assert kinds["both failed"] < 10
    scan_encrypted(encrypted, needles(work.used | {str(v) for v in BIG}), tables=("r",))


@pytest.mark.parametrize(("sql", "word"), REFUSED_HAVING)
def test_having_refusals(encrypted: EncryptedRunner, sql: str, word: str) -> None:
    from tests.rewrite_workload import DDL

    encrypted.execute(DDL)
    with pytest.raises(MysqlError) as e:
        encrypted.execute(sql)
    assert e.value.code == 1235 and word in e.value.message, e.value.message
