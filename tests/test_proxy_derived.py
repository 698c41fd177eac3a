"""Derived tables through the LIVE proxy (`cryptdb serve`): tests/derived_workload.py's seeded
SELECTs over derived tables on the encrypted tables against a plaintext copy straight on
MariaDB. Rows with their Python types and result metadata (names, database, table and
org_table, types, lengths, decimals, flags, charsets: MariaDB's for a merged or a
materialized derived table) must agree; the refusals answer 1235; afterwards the encrypted
tables hold no plaintext value the workload used, and MariaDB's general log shows no text
or date of the workload in any statement on an encrypted table.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest

from proxy.devbackend import DevBackend
from tests.conftest import ProxyProcess
from tests.derived_workload import REFUSED_DERIVED, DerivedWorkload
from tests.rewrite_support import extra_database
from tests.rewrite_workload import BIG, needles, same
from tests.test_proxy_differential import _db, _run
from tests.test_proxy_subquery import _scan, _setup, general_log
from tests.test_rewrite_derived import EDGE_CASES

STATEMENTS = 350


@pytest.mark.parametrize("seed", [51, 52])
def test_derived_through_the_proxy(
    backend: DevBackend, encrypted_proxy: ProxyProcess, database: str, seed: int
) -> None:
    work = DerivedWorkload(seed)
    statements = [(s, "ORDER BY" in _outer_text(s), "edge") for s in EDGE_CASES]
    for _ in range(STATEMENTS):
        st = work.insert() if work.rng.random() < 0.1 else work.derived_statement()
        statements.append((st.sql, st.ordered, st.kind))
    kinds: Counter[str] = Counter()
    with extra_database(backend, "pder") as enc_db:
        plain, enc = _setup(backend, encrypted_proxy, database, enc_db, work)
        backend_thread = _run(enc, "SELECT CONNECTION_ID()")[1][0][0][1]
        try:
            with general_log(backend, backend_thread) as sent:
                for n, (sql, ordered, kind) in enumerate(statements):
                    status = _compare(plain, enc, sql, ordered, (seed, n), database, enc_db)
                    kinds["both failed" if status == "error" else kind] += 1
                for sql, word in REFUSED_DERIVED:
                    status, code, message = _run(enc, sql)
                    assert (status, code) == ("error", 1235) and word in message, (sql, message)
        finally:
            enc.close()
            plain.close()
        print(f"\nseed {seed} through the proxy: {dict(kinds)}, {len(sent)} backend statements")
        for kind in ("agg", "ordered", "grouped", "distinct", "rows"):
            assert kinds[kind] > 15, kind
        _scan(backend, enc_db, needles(work.used | {str(v) for v in BIG}))
    # Only the inner statements reached the server, rewritten: no text or date the workload
    # used in any statement on an encrypted table, and no derived table at all.
    on_encrypted = [q for q in sent if re.search(r"`t_\d+`", q)]
    assert len(on_encrypted) > STATEMENTS // 2
    texts = {v for v in work.used if len(v) >= 5}
    assert [(v, q[:60]) for q in on_encrypted for v in texts if v in q] == []
    assert not [q for q in on_encrypted if re.search(r"(?i)\bFROM \(SELECT", q)]


def _compare(
    plain: Any, enc: Any, sql: str, ordered: bool, where: Any, plain_db: str, enc_db: str
) -> str:
    """tests/test_proxy_differential.py's comparison, but for one known difference: grouping
    or DISTINCT over a merged derived table names the base table as org_table when MariaDB
    goes through a temporary table, the derived table's alias when its optimizer finds it
    needs none (an impossible or constant WHERE, an index; with an empty result it also
    names the base column as org_name): either is accepted there."""
    p_status, p_result, p_meta = _run(plain, sql)
    e_status, e_result, e_meta = _run(enc, sql)
    at = (where, sql, p_result, p_meta, e_result, e_meta)
    assert (p_status, e_status) in (("ok", "ok"), ("error", "error")), at
    if p_status == "error":
        assert p_result == e_result, at
        return p_status
    assert same(p_result, e_result, ordered), at
    if isinstance(p_result, list):
        p_meta, e_meta = _db(p_meta, plain_db), _db(e_meta, enc_db)
        if "FROM (SELECT" in sql and _GROUPED.search(_outer_text(sql)):
            empty = not p_result  # an impossible WHERE: MariaDB names the base column too
            p_meta, e_meta = _either_origin(p_meta, empty), _either_origin(e_meta, empty)
        assert p_meta == e_meta, at
    return p_status


def _outer_text(sql: str) -> str:
    """The statement without its (first) derived table's text."""
    if "FROM (" not in sql:
        return sql
    start = sql.index("FROM (") + len("FROM ")
    depth = 0
    for i in range(start, len(sql)):
        depth += {"(": 1, ")": -1}.get(sql[i], 0)
        if depth == 0:
            return sql[:start] + sql[i + 1 :]
    return sql


_GROUPED = re.compile(r"(?i)\b(GROUP BY|DISTINCT)\b")


def _either_origin(meta: list[tuple[Any, ...]], empty: bool) -> list[tuple[Any, ...]]:
    """org_table as 'base or alias' for columns of a table (index 3 of the metadata), and
    org_name (index 4) as 'base or inner name' for an empty result."""
    return [
        (*m[:3], "<origin>" if m[2] else m[3], "<name>" if m[2] and empty else m[4], *m[5:])
        for m in meta
    ]
