"""Two live proxies on ONE keystore: a table created on one is usable on the other at once,
a peel made by one is seen by the other (no second peel: the audit log and the backend's
layers table say so), and concurrent first equality queries peel exactly once."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import pymysql
import pytest

from proxy.devbackend import DevBackend
from tests.conftest import LOW_KDF, ProxyProcess, start_proxy, stop_proxy
from tests.rewrite_support import connect


@pytest.fixture(scope="module")
def proxy_b(
    backend: DevBackend, encrypted_proxy: ProxyProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    encrypted_proxy.connect(None).close()  # the first login creates the keystore, on A
    ks = encrypted_proxy.keystore  # type: ignore[attr-defined]
    p = start_proxy(
        backend, tmp_path_factory.mktemp("proxy_b"), extra=f"keystore = {ks}\n" + LOW_KDF
    )
    p.keystore = ks  # type: ignore[attr-defined]
    try:
        yield p
    finally:
        stop_proxy(p)


def _connect(p: ProxyProcess, db: str) -> pymysql.Connection:
    return p.connect(db, autocommit=True, charset="utf8mb4")


@pytest.fixture
def a(encrypted_proxy: ProxyProcess, database: str) -> Iterator[pymysql.Connection]:
    conn = _connect(encrypted_proxy, database)
    yield conn
    conn.close()


@pytest.fixture
def b(proxy_b: ProxyProcess, database: str) -> Iterator[pymysql.Connection]:
    conn = _connect(proxy_b, database)
    yield conn
    conn.close()


def q(conn: pymysql.Connection, sql: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


def audit(p: ProxyProcess, db: str) -> list[tuple[str, str, str, str, str, str]]:
    path = p.keystore.with_name(p.keystore.name + ".audit")  # type: ignore[attr-defined]
    if not path.exists():
        return []
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    return [
        (e["table"], e["column"], e["onion"], e["from"], e["to"], e["outcome"])
        for e in entries
        if e["database"] == db
    ]


def layers(backend: DevBackend, db: str) -> list[tuple[str, str]]:
    """(onion, layer) of each onion the backend's layers table records as peeled (writes
    add rows at RND for the onions they guard)."""
    conn = connect(backend, db)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT onion, layer FROM _cryptdb_layers WHERE layer <> 'rnd' "
                "ORDER BY table_id, column_id"
            )
            return list(cur.fetchall())
    finally:
        conn.close()


ROWS = [(1, "alpha", "1.50"), (2, "beta", None), (3, "gamma", "-2.25"), (2, "delta", "0.00")]


def _make(conn: pymysql.Connection, table: str = "t") -> None:
    q(
        conn,
        f"CREATE TABLE {table} (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, k INT NOT NULL, "
        "c VARCHAR(20) COLLATE utf8mb4_bin, d DECIMAL(10,2), e INT, f DATE)",
    )
    values = ", ".join(
        f"({k}, '{c}', {'NULL' if d is None else d}, {k * 10}, '2020-01-0{k}')" for k, c, d in ROWS
    )
    q(conn, f"INSERT INTO {table} (k, c, d, e, f) VALUES {values}")


def test_table_created_on_a_is_usable_on_b(a, b, database) -> None:
    _make(a)
    # B never saw the CREATE: its next statement reads the keystore's newer schema.
    assert q(b, "SHOW TABLES") == [("t",)]
    assert q(b, "SELECT k, c, d FROM t ORDER BY id") == [
        (1, "alpha", Decimal("1.50")),
        (2, "beta", None),
        (3, "gamma", Decimal("-2.25")),
        (2, "delta", Decimal("0.00")),
    ]
    q(b, "INSERT INTO t (k, c, d) VALUES (9, 'from b', 9.99)")
    assert q(a, "SELECT id, c FROM t WHERE d > 5") == [(5, "from b")]
    assert q(b, "SELECT SUM(k), COUNT(*) FROM t") == [(Decimal(17), 5)]
    q(a, "UPDATE t SET k = k + 1 WHERE c = 'from b'")  # read-modify-write on A
    assert q(b, "SELECT k FROM t WHERE id = 5") == [(10,)]
    # DDL on B, seen by A; ids are handed out under the cross-process lock.
    q(b, "CREATE TABLE u (x INT, y VARCHAR(5))")
    q(a, "INSERT INTO u VALUES (1, 'one')")
    assert q(b, "SELECT y FROM u WHERE x = 1") == [("one",)]
    assert sorted(q(a, "SHOW TABLES")) == [("t",), ("u",)]


def test_peel_on_a_is_seen_by_b(a, b, backend, encrypted_proxy, database) -> None:
    _make(a)
    assert len(q(b, "SELECT * FROM t")) == 4  # B has loaded the schema: c's Eq at RND
    assert audit(encrypted_proxy, database) == []
    assert q(a, "SELECT k FROM t WHERE c = 'beta'") == [(2,)]  # the peel, on A
    peel = [("t", "c", "eq", "RND", "DET", "peeled")]
    assert audit(encrypted_proxy, database) == peel
    assert layers(backend, database) == [("eq", "det")]
    # B plans with the new layer: right rows, and no second peel (not even an attempt).
    assert q(b, "SELECT k FROM t WHERE c = 'gamma'") == [(3,)]
    assert q(b, "SELECT COUNT(DISTINCT c) FROM t") == [(4,)]
    assert audit(encrypted_proxy, database) == peel
    assert layers(backend, database) == [("eq", "det")]
    assert q(b, "SELECT c FROM t ORDER BY id") == [("alpha",), ("beta",), ("gamma",), ("delta",)]


def test_concurrent_ddl_on_both(a, b, backend, database) -> None:
    """CREATE TABLE on both proxies at once: the cross-process DDL lock hands out distinct
    ids, and each proxy sees both tables."""
    for n in range(3):
        results = race(
            {
                "a": (a, f"CREATE TABLE a{n} (x INT, y VARCHAR(8))"),
                "b": (b, f"CREATE TABLE b{n} (x INT, y VARCHAR(8))"),
            }
        )
        assert results == {"a": [], "b": []}
        q(a, f"INSERT INTO b{n} VALUES ({n}, 'by a')")
        q(b, f"INSERT INTO a{n} VALUES ({n}, 'by b')")
        assert q(b, f"SELECT x, y FROM b{n}") == [(n, "by a")]
        assert q(a, f"SELECT x, y FROM a{n}") == [(n, "by b")]
    names = [f"{p}{n}" for n in range(3) for p in "ab"]
    assert sorted(q(a, "SHOW TABLES")) == sorted(q(b, "SHOW TABLES")) == sorted((t,) for t in names)
    direct = connect(backend, database)
    try:
        with direct.cursor() as cur:
            cur.execute("SHOW TABLES")
            backend_tables = [t for (t,) in cur.fetchall() if t != "_cryptdb_layers"]
    finally:
        direct.close()
    assert len(backend_tables) == 6 and all(t.startswith("t_") for t in backend_tables)


def test_transaction_on_a_sees_a_peel_made_by_b(a, b, encrypted_proxy, database) -> None:
    """A's open transaction has a snapshot from before B's peel: A reads the latest rows."""
    _make(a)
    a.begin()
    assert q(a, "SELECT COUNT(*) FROM t") == [(4,)]  # the snapshot is taken here
    assert q(b, "SELECT k FROM t WHERE c = 'beta'") == [(2,)]  # B peels c's Eq onion
    assert q(a, "SELECT k FROM t WHERE c = 'gamma'") == [(3,)]
    assert q(a, "SELECT COUNT(DISTINCT c) FROM t") == [(4,)]
    a.commit()
    assert audit(encrypted_proxy, database) == [("t", "c", "eq", "RND", "DET", "peeled")]


RACES = [  # (first query of its kind on a column, its rows, the peel it needs)
    ("SELECT id FROM t WHERE k = 2 ORDER BY id", [(2,), (4,)], ("k", "eq", "RND", "DET")),
    ("SELECT k FROM t WHERE c = 'gamma'", [(3,)], ("c", "eq", "RND", "DET")),
    ("SELECT id FROM t WHERE d < 0", [(3,)], ("d", "ord", "RND", "OPE")),
    ("SELECT id FROM t WHERE e IN (10, 30) ORDER BY id", [(1,), (3,)], ("e", "eq", "RND", "DET")),
    ("SELECT id FROM t WHERE f BETWEEN '2020-01-02' AND '2020-01-02' ORDER BY id",
     [(2,), (4,)], ("f", "ord", "RND", "OPE")),
]  # fmt: skip


def race(jobs: dict[str, tuple[pymysql.Connection, str]]) -> dict[str, object]:
    """Each (connection, statement) at once (threads released together): rows or exception."""
    barrier = threading.Barrier(len(jobs))
    results: dict[str, object] = {}

    def run(name: str, job: tuple[pymysql.Connection, str]) -> None:
        conn, sql = job
        barrier.wait()
        try:
            results[name] = q(conn, sql)
        except Exception as e:  # compared by the caller
            results[name] = e

    threads = [threading.Thread(target=run, args=item) for item in jobs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_concurrent_first_queries_peel_once(
    a, b, backend, encrypted_proxy, proxy_b, database
) -> None:
    _make(a)
    q(b, "SELECT COUNT(*) FROM t")
    for sql, want, (column, onion, frm, to) in RACES:
        results = race({"a": (a, sql), "b": (b, sql)})
        assert results == {"a": want, "b": want}, sql
        mine = [e for e in audit(encrypted_proxy, database) if e[1] == column]
        outcomes = sorted(e[5] for e in mine)
        # Exactly one peel; the loser, if it planned before the winner saved, only records it.
        assert outcomes in (["peeled"], ["already peeled", "peeled"]), (sql, mine)
        assert {e[:5] for e in mine} == {("t", column, onion, frm, to)}
        print(f"\n{column} {onion}: {outcomes}")
    assert sorted(layers(backend, database)) == sorted(
        (onion, to.lower()) for _, _, (_, onion, _, to) in RACES
    )
    # Nothing was decrypted twice: every value reads back on both proxies.
    expected = [
        (i, k, c, None if d is None else Decimal(d)) for i, (k, c, d) in enumerate(ROWS, start=1)
    ]
    for conn in (a, b):
        assert q(conn, "SELECT id, k, c, d FROM t ORDER BY id") == expected
        assert q(conn, "SELECT id FROM t WHERE k = 3 AND c = 'gamma' AND d < 0") == [(3,)]


def _wait_for_lock_waits(backend: DevBackend, n: int) -> None:
    """Until InnoDB reports n transactions waiting for a lock (the peel waits 2 s at most).
    InnoDB refreshes these tables only after 0.1 s without a read: poll slower than that."""
    deadline = time.monotonic() + 1.6
    with backend.admin() as conn, conn.cursor() as cur:
        while True:
            cur.execute("SELECT COUNT(*) FROM information_schema.innodb_lock_waits")
            if cur.fetchone()[0] >= n:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {n} lock waits")
            time.sleep(0.15)


# Across proxies the write's guard (a share lock on the onion's layer row, taken before the
# write) waits on the peel's FOR UPDATE, sees DET after it and is planned again; within one
# proxy the PeelGate orders them before planning.
@pytest.mark.parametrize("writer", ["other proxy", "same proxy"])
def test_write_planned_before_a_peel_lands_after_it(
    a, b, backend, encrypted_proxy, database, writer
) -> None:
    q(a, "CREATE TABLE g (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, c VARCHAR(20))")
    q(a, "INSERT INTO g (id, c) VALUES (1, 'one'), (3, 'three'), (5, 'five'), (10, 'ten')")
    holder = _connect(encrypted_proxy, database)
    other = b if writer == "other proxy" else _connect(encrypted_proxy, database)
    jobs: dict[str, object] = {}

    def first_equality() -> None:  # on A: peels c's Eq onion; its scan waits on row 10
        jobs["peel"] = q(a, "SELECT id FROM g WHERE c = 'three'")

    def insert() -> None:  # planned at RND; waits on the peel's next-key lock of (3, 5]
        jobs["insert"] = q(other, "INSERT INTO g (id, c) VALUES (4, 'four')")

    try:
        holder.begin()
        q(holder, "SELECT id FROM g WHERE id = 10 FOR UPDATE")
        threads = [threading.Thread(target=first_equality), threading.Thread(target=insert)]
        threads[0].start()
        _wait_for_lock_waits(backend, 1)  # the peel waits on the holder
        threads[1].start()
        if writer == "other proxy":
            _wait_for_lock_waits(backend, 2)  # the INSERT waits on the peel
        else:
            time.sleep(0.5)  # the INSERT waits on this proxy's PeelGate, before planning
        holder.commit()  # the peel goes on and commits, then the INSERT is let in
        for t in threads:
            t.join(timeout=30)
    finally:
        holder.close()
        if other is not b:
            other.close()
    # The set-up worked (not AssertionError: the xfail expects that from the bug only).
    peeled = audit(encrypted_proxy, database) == [("g", "c", "eq", "RND", "DET", "peeled")]
    if jobs != {"peel": [(3,)], "insert": []} or not peeled:
        raise RuntimeError(f"set-up failed: {jobs}")
    assert q(b, "SELECT id FROM g WHERE c = 'four'") == [(4,)]  # fails: []
    assert len(q(a, "SELECT c FROM g ORDER BY id")) == 5  # fails: 7003
