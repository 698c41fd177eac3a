"""UNION through the LIVE proxy: tests/union_workload.py's seeded statements on encrypted
tables against a plaintext copy straight on MariaDB. Rows with their Python types and the
result metadata MariaDB gives a UNION (names of the first branch, no origin, flags and
types with and without its temporary table) must agree; refusals answer 1235; afterwards
the encrypted tables hold no plaintext value the workload used."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from proxy.devbackend import DevBackend
from tests.conftest import ProxyProcess
from tests.rewrite_support import extra_database
from tests.rewrite_workload import BIG, needles
from tests.test_proxy_differential import _run, compare_through_proxy
from tests.test_proxy_subquery import _scan, _setup
from tests.union_workload import REFUSED_UNION, UnionWorkload

STATEMENTS = 300


@pytest.fixture
def encrypted_db(backend: DevBackend) -> Iterator[str]:
    with extra_database(backend, "puni") as name:
        yield name


@pytest.mark.parametrize("seed", [61, 62])
def test_union_through_the_proxy(
    backend: DevBackend, encrypted_proxy: ProxyProcess, database: str, encrypted_db: str, seed: int
) -> None:
    work = UnionWorkload(seed)
    plain, enc = _setup(backend, encrypted_proxy, database, encrypted_db, work)
    kinds: Counter[str] = Counter()
    try:
        for n in range(STATEMENTS):
            roll = work.rng.random()
            st = work.insert() if roll < 0.1 else work.union_statement()
            status, _ = compare_through_proxy(
                plain, enc, st.sql, st.ordered, (seed, n), database, encrypted_db
            )
            if status == "error":
                kinds["both failed"] += 1
                continue
            kinds[st.kind] += 1
        for sql, word in REFUSED_UNION:
            status, code, message = _run(enc, sql)
            assert (status, code) == ("error", 1235) and word in message, (sql, message)
    finally:
        enc.close()
        plain.close()
    print(f"\nseed {seed} through the proxy: {dict(kinds)}")
    assert kinds["rows"] + kinds["ordered"] > STATEMENTS // 2
    _scan(backend, encrypted_db, needles(work.used | {str(v) for v in BIG}))
