"""HAVING through the LIVE proxy: tests/having_workload.py's seeded statements on an
encrypted table against a plaintext copy straight on MariaDB (rows with their Python types,
result metadata, errors), then the encrypted table's rows scanned for plaintext, and the
statements the server received for any text or date the workload used."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from proxy.devbackend import DevBackend
from tests.conftest import ProxyProcess
from tests.having_workload import REFUSED_HAVING, HavingWorkload
from tests.rewrite_support import extra_database
from tests.rewrite_workload import BIG, DDL, needles
from tests.test_proxy_differential import _run, _scan_backend, compare_through_proxy
from tests.test_proxy_subquery import live_pair

STATEMENTS = 350


@pytest.fixture
def encrypted_db(backend: DevBackend) -> Iterator[str]:
    with extra_database(backend, "phav") as name:
        yield name


@pytest.mark.parametrize("seed", [41, 42])
def test_having_through_the_proxy(
    backend: DevBackend, encrypted_proxy: ProxyProcess, database: str, encrypted_db: str, seed: int
) -> None:
    work = HavingWorkload(seed)
    kinds: Counter[str] = Counter()
    with live_pair(backend, encrypted_proxy, database, encrypted_db) as (plain, enc, sent):
        assert _run(plain, DDL)[0] == _run(enc, DDL)[0] == "ok"
        for n in range(STATEMENTS):
            roll = work.rng.random()
            if n < 20 or roll < 0.15:
                st = work.insert()
            elif roll < 0.2:
                st = work.update()
            else:
                st = work.having_statement()
            status, _ = compare_through_proxy(
                plain, enc, st.sql, st.ordered, (seed, n), database, encrypted_db
            )
            if status == "error":
                kinds["both failed"] += 1
                continue
            kinds[st.kind] += 1
        for sql, word in REFUSED_HAVING:
            status, code, message = _run(enc, sql)
            assert (status, code) == ("error", 1235) and word in message, (sql, message)
    print(f"\nseed {seed} through the proxy: {dict(kinds)}")
    assert kinds["rows"] + kinds["ordered"] > STATEMENTS // 2
    _scan_backend(backend, encrypted_db, needles(work.used | {str(v) for v in BIG}))
    # HAVING's constants stay in the proxy; WHERE's reach the server encrypted.
    assert len(sent) > STATEMENTS
    texts = {v for v in work.used if len(v) >= 5}
    assert [(v, q[:60]) for q in sent for v in texts if v in q] == []
