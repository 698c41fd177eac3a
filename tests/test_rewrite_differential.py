"""The differential oracle: the same seeded workload on a plaintext database and, through the
rewriter's plans, on an encrypted one; results must be equal (as multisets unless ordered).
Afterwards the encrypted tables are scanned, as rows and as InnoDB files, for every
plaintext value the workload used: 0 hits.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pymysql
import pytest

from proxy.devbackend import DevBackend
from proxy.rewrite import Refusal
from tests.rewrite_support import EncryptedRunner
from tests.rewrite_workload import BIG, DDL, Workload, needles, same

STATEMENTS = 1000


def _plain(cur: Any, sql: str) -> tuple[str, Any]:
    try:
        cur.execute(sql)
    except pymysql.MySQLError as e:
        return "error", e.args[0]
    return "ok", list(cur.fetchall()) if cur.description else cur.rowcount


def _encrypted(runner: EncryptedRunner, sql: str) -> tuple[str, Any]:
    try:
        return "ok", runner.execute(sql)
    except Refusal:
        raise
    except pymysql.MySQLError as e:
        return "error", e.args[0]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_differential(
    backend: DevBackend, plain: pymysql.Connection, encrypted: EncryptedRunner, seed: int
) -> None:
    work = Workload(seed)
    with plain.cursor() as cur:
        cur.execute(DDL)
        encrypted.execute(DDL)
        kinds: Counter[str] = Counter()
        start = time.perf_counter()
        for n in range(STATEMENTS):
            st = work.insert() if n < 15 else work.statement()
            p_status, p_result = _plain(cur, st.sql)
            e_status, e_result = _encrypted(encrypted, st.sql)
            assert p_status == e_status, (st.sql, p_result, e_result)
            if p_status == "ok":
                assert same(p_result, e_result, st.ordered), (st.sql, p_result, e_result)
            kinds[st.kind if p_status == "ok" else "error"] += 1
        elapsed = time.perf_counter() - start
        cur.execute("SELECT * FROM r ORDER BY id")
        final = cur.fetchall()
    assert same(final, encrypted.execute("SELECT * FROM r ORDER BY id"), True)
    print(
        f"\nseed {seed}: {dict(kinds)} in {elapsed:.1f}s, {len(final)} rows, "
        f"peels {encrypted.peels}, cache {encrypted.rewriter.hits}/{encrypted.rewriter.misses}"
    )
    assert kinds["rows"] + kinds["ordered"] > STATEMENTS // 3
    wanted = needles(work.used | {str(v) for v in BIG})
    _scan_rows(encrypted, wanted)
    _scan_files(backend, encrypted, wanted)
    # Control: the same scan finds the values in the plaintext copy.
    with plain.cursor() as cur:
        cur.execute("FLUSH TABLES r FOR EXPORT")
        try:
            data = Path(backend.datadir, plain.db.decode(), "r.ibd").read_bytes()
        finally:
            cur.execute("UNLOCK TABLES")
    assert any(n in data for n in wanted)


def _scan_rows(runner: EncryptedRunner, needles: set[bytes]) -> None:
    table = runner.schema.table(runner.database, "r")
    assert table is not None
    plain_cols = {c.plain_name for c in table.columns if c.plain}
    with runner.conn.cursor() as cur:
        cur.execute(f"SELECT * FROM `{table.backend_name}`")
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
    assert rows, "the workload left no rows to scan"
    hits = [
        (name, needle)
        for row in rows
        for name, cell in zip(names, row, strict=True)
        if name not in plain_cols and cell is not None
        for needle in needles
        if needle in (cell if isinstance(cell, bytes) else str(cell).encode())
    ]
    assert hits == []


def _scan_files(backend: DevBackend, runner: EncryptedRunner, needles: set[bytes]) -> None:
    """The InnoDB file of the encrypted table, flushed to disk first."""
    table = runner.schema.table(runner.database, "r")
    assert table is not None
    with runner.conn.cursor() as cur:
        cur.execute(f"FLUSH TABLES `{table.backend_name}` FOR EXPORT")
        try:
            data = Path(backend.datadir, runner.database, f"{table.backend_name}.ibd").read_bytes()
        finally:
            cur.execute("UNLOCK TABLES")
    assert len(data) > 16384
    assert [n for n in needles if n in data] == []
