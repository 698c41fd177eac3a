"""Select-list expressions through the LIVE proxy: tests/expr_workload.py's seeded statements
on an encrypted table against a plaintext copy straight on MariaDB (rows with their Python
types, the full column metadata, errors: integer overflows are 1690 on both sides), the
refusals, then the encrypted table's rows and InnoDB file scanned for plaintext, and the
statements the server received for any text the workload used (expressions' constants
stay in the proxy; the server is sent the columns only)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from proxy.devbackend import DEMO_PASSWORD, DEMO_USER, DevBackend
from tests.conftest import ProxyProcess
from tests.expr_workload import DDL, PROXY_REFUSALS, REFUSED_EXPRS, ExprWorkload
from tests.rewrite_support import connect, extra_database
from tests.rewrite_workload import needles
from tests.test_proxy_differential import _run, _scan_backend, compare_through_proxy
from tests.test_proxy_subquery import live_pair

STATEMENTS = 250
SECRET = "proxy-only constant"


@pytest.fixture
def encrypted_db(backend: DevBackend) -> Iterator[str]:
    with extra_database(backend, "pexp") as name:
        yield name


@pytest.mark.parametrize("seed", [61, 62])
def test_exprs_through_the_proxy(
    backend: DevBackend, encrypted_proxy: ProxyProcess, database: str, encrypted_db: str, seed: int
) -> None:
    work = ExprWorkload(seed)
    kinds: Counter[str] = Counter()
    with live_pair(backend, encrypted_proxy, database, encrypted_db) as (plain, enc, sent):
        assert _run(plain, DDL)[0] == _run(enc, DDL)[0] == "ok"
        for n in range(STATEMENTS):
            if n < 25 or n % 40 == 0:
                sql, ordered = work.insert(), False
            elif n % 40 == 1:
                sql, ordered = f"SELECT CONCAT(s, '{SECRET}'), id FROM x ORDER BY id", True
            else:
                sql, ordered = work.select()
            status, code, message = _run(enc, sql) if sql.startswith("SELECT") else ("", 0, "")
            if status == "error" and code == 1235 and any(w in message for w in PROXY_REFUSALS):
                assert _run(plain, sql)[0] == "ok", sql
                kinds["refused per row"] += 1
                continue
            status, _ = compare_through_proxy(
                plain, enc, sql, ordered, (seed, n), database, encrypted_db
            )
            kinds["both failed" if status == "error" else "ordered" if ordered else "rows"] += 1
        for sql, word in REFUSED_EXPRS:
            status, code, message = _run(enc, sql)
            assert (status, code) == ("error", 1235) and word in message, (sql, message)
        # the connection stays usable after a refusal and an overflow
        assert _run(enc, "SELECT b + 9223372036854775807 FROM x WHERE b > 0")[:2] == (
            "error", 1690)  # fmt: skip
        assert _run(enc, "SELECT COUNT(*) FROM x")[0] == "ok"
    print(f"\nseed {seed} through the proxy: {dict(kinds)}")
    assert kinds["rows"] + kinds["ordered"] > STATEMENTS // 2
    _scan_backend(backend, encrypted_db, needles(work.used))
    assert len(sent) > STATEMENTS
    texts = {v for v in work.used if len(v) >= 5} | {SECRET}
    assert [(v, q[:60]) for q in sent for v in texts if v in q] == []


# Without parameters: the proxy binds them as literals, so `a + ?` is named and typed as
# `a + 1` would be (MariaDB names it `a + ?`, typed by the parameter), as for SELECT ?.
PREPARED = [
    "SELECT a + 1, d / 3, CONCAT(s, '!'), UPPER(g), COALESCE(u, -1) FROM x ORDER BY id",
    "SELECT IF(a > 0, t, tn), YEAR(dt), ROUND(d, 1), b DIV 7, e MOD 4 FROM x ORDER BY id",
    "SELECT SUBSTRING(s, 2, 3), LENGTH(c), -ti, FLOOR(ud), DATE(dt) FROM x ORDER BY id",
]


def test_exprs_prepared_through_the_proxy(
    backend: DevBackend, encrypted_proxy: ProxyProcess, database: str, encrypted_db: str
) -> None:
    """Server-side prepared statements (binary rows): the same values and descriptions as
    MariaDB's own for the plaintext copy."""
    import mysql.connector

    work = ExprWorkload(63)
    enc_load = encrypted_proxy.connect(encrypted_db, autocommit=True, charset="utf8mb4")
    plain_load = connect(backend, database, charset="utf8mb4")
    try:
        for sql in [DDL] + [work.insert() for _ in range(20)]:
            assert _run(plain_load, sql)[0] == _run(enc_load, sql)[0] == "ok", sql
    finally:
        enc_load.close()
        plain_load.close()
    enc = encrypted_proxy.connector(encrypted_db, charset="utf8mb4")
    plain = mysql.connector.connect(host="127.0.0.1", port=backend.port, user=DEMO_USER,
                                    password=DEMO_PASSWORD, database=database, use_pure=True,
                                    ssl_disabled=True, charset="utf8mb4")  # fmt: skip
    try:
        for sql in PREPARED:
            results = []
            for conn in (plain, enc):
                cur = conn.cursor(prepared=True)
                cur.execute(sql)
                results.append((cur.description, cur.fetchall()))
                cur.close()
            assert results[0] == results[1], sql
    finally:
        enc.close()
        plain.close()
