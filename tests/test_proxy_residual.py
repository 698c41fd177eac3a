"""Residual conditions through the LIVE proxy: tests/residual_workload.py's seeded SELECTs
(text ranges, BETWEEN, LIKE patterns, ESCAPE, NOT, mixed with server conditions, ORDER BY +
LIMIT / OFFSET, ungrouped aggregates incl. MIN / MAX of text, a join) against a plaintext
copy straight on MariaDB, rows and result metadata; the refusals; then the encrypted tables'
rows and files scanned for plaintext, and MariaDB's general log of the proxy's connection
for any stored text or any constant of a residual condition."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from pymysql.constants import CLIENT

from proxy.devbackend import DevBackend
from tests.conftest import ProxyProcess
from tests.residual_workload import DDL, REFUSED, ResidualWorkload, quote
from tests.rewrite_support import connect, extra_database
from tests.rewrite_workload import needles, same
from tests.test_proxy_differential import _db, _run, _scan_backend, compare_through_proxy
from tests.test_proxy_subquery import live_pair

STATEMENTS = 350


@pytest.fixture
def encrypted_db(backend: DevBackend) -> Iterator[str]:
    with extra_database(backend, "pres") as name:
        yield name


def _flags(meta: Any) -> Any:
    return [(*m[:7], m[7] & (1 | 32), *m[8:]) for m in meta]


def _unpadded(rows: Any) -> Any:
    """MIN / MAX among PAD-SPACE-equal values: the first the scan meets (scan orders differ)."""
    if not isinstance(rows, list):
        return rows
    return [tuple((t, v.rstrip(" ") if isinstance(v, str) else v) for t, v in r) for r in rows]


@pytest.mark.parametrize("seed", [71, 72])
def test_residual_through_the_proxy(
    backend: DevBackend, encrypted_proxy: ProxyProcess, database: str, encrypted_db: str, seed: int
) -> None:
    work = ResidualWorkload(seed)
    kinds: Counter[str] = Counter()
    with live_pair(backend, encrypted_proxy, database, encrypted_db) as (plain, enc, sent):
        for ddl in DDL:
            assert _run(plain, ddl)[0] == _run(enc, ddl)[0] == "ok"
        for n in range(STATEMENTS):
            st = work.statement(n)
            if st.join:  # MariaDB drops key flags when a joined table is a const table
                p, e = _run(plain, st.sql), _run(enc, st.sql)
                at = ((seed, n), st.sql, p, e)
                assert p[0] == e[0] == "ok" and same(p[1], e[1], st.ordered), at
                assert _flags(_db(p[2], database)) == _flags(_db(e[2], encrypted_db)), at
                kinds[st.kind] += 1
                kinds["non-empty"] += bool(p[1])
                continue
            if st.kind == "agg":
                p, e = _run(plain, st.sql), _run(enc, st.sql)
                at = ((seed, n), st.sql, p, e)
                assert p[0] == e[0] == "ok", at
                assert _unpadded(p[1]) == _unpadded(e[1]), at
                assert _db(p[2], database) == _db(e[2], encrypted_db), at  # metadata
                kinds["agg"] += 1
                continue
            status, result = compare_through_proxy(
                plain,
                enc,
                st.sql,
                st.ordered,
                (seed, n),
                database,
                encrypted_db,
                insert_ids=False,
            )
            if status == "error":
                kinds["both failed"] += 1
                continue
            kinds[st.kind] += 1
            if st.kind != "insert" and result:
                kinds["non-empty"] += 1
        for sql, word in REFUSED:
            status, code, message = _run(enc, sql)
            assert (status, code) == ("error", 1235) and word in message, (sql, message)
    print(f"\nseed {seed} through the proxy: {dict(kinds)}")
    assert kinds["non-empty"] > 100 and kinds["ordered"] > 60 and kinds["agg"] > 30
    assert kinds["both failed"] < 5
    _scan_backend(backend, encrypted_db, needles({t for t in work.texts if len(t.encode()) >= 5}))
    # The residuals' constants stay in the proxy; stored text reaches the server encrypted.
    assert len(sent) > STATEMENTS
    constants = {quote(c)[1:-1] for c in work.constants if len(c) >= 4}
    texts = {quote(t)[1:-1] for t in work.texts if len(t) >= 5}
    assert [(v, q[:60]) for q in sent for v in constants | texts if v in q] == []


def test_prepared_statements(
    backend: DevBackend, encrypted_proxy: ProxyProcess, database: str, encrypted_db: str
) -> None:
    """COM_STMT_EXECUTE (mysql-connector, binary rows): the residuals' constants arrive as
    bound parameters, the same shape runs with patterns decided both ways ('%word%' on the
    Search onion, a whole-word match, 'word%' in the proxy), and a write with a residual in
    autocommit."""
    enc = encrypted_proxy.connect(encrypted_db, autocommit=True, charset="utf8mb4")
    plain = connect(backend, database, charset="utf8mb4", client_flag=CLIENT.FOUND_ROWS)
    rows = "('apple pie', 'a', 1), ('applesauce', 'b', 2), ('an apple', NULL, 3), (NULL, 'c', 4)"
    for ddl in [*DDL, f"INSERT INTO q (s, c, p) VALUES {rows}"]:
        assert _run(plain, ddl)[0] == _run(enc, ddl)[0] == "ok"
    enc.close()
    conn = encrypted_proxy.connector(encrypted_db, autocommit=True, charset="utf8mb4")
    statements = [
        ("SELECT id, s FROM q WHERE s LIKE %s", ("apple%",)),
        ("SELECT id, s FROM q WHERE s LIKE %s AND s <> 'applesauce'", ("%apple%",)),  # a word
        ("SELECT id, s FROM q WHERE s LIKE %s", ("%apple",)),
        ("SELECT id FROM q WHERE s < %s AND p > %s ORDER BY s DESC LIMIT %s", ("b", 1, 2)),
        ("SELECT COUNT(*), MIN(s), MAX(s) FROM q WHERE s BETWEEN %s AND %s", ("a", "apple z")),
        ("UPDATE q SET p = %s WHERE s >= %s", (7, "applesauce")),
        ("DELETE FROM q WHERE s LIKE %s AND p < %s", ("an%", 5)),
        ("SELECT id, s, c, p FROM q", ()),
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
                rows_ = [tuple(v.decode() if isinstance(v, bytes | bytearray) else v for v in r)
                         for r in got]  # fmt: skip
                assert same(want, rows_, "ORDER BY" in sql), (sql, want, got)
    finally:
        conn.close()
        plain.close()
