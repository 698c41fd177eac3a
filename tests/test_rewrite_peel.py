"""Onion peeling happens exactly once, across proxies with stale metadata and in races."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator

import pytest

from proxy.devbackend import DevBackend
from proxy.rewrite import Execute, PeelFirst
from proxy.schema import Schema
from tests.rewrite_support import EncryptedRunner, extra_database

DDL = "CREATE TABLE r (id INT AUTO_INCREMENT PRIMARY KEY, k INT, s VARCHAR(20))"


@pytest.fixture
def pair(backend: DevBackend) -> Iterator[tuple[EncryptedRunner, EncryptedRunner]]:
    """Two proxies on one database: same master key, metadata copied before any peel."""
    master = secrets.token_bytes(32)
    with extra_database(backend) as name:
        a = EncryptedRunner(backend, name, master=master)
        a.execute(DDL)
        a.execute("INSERT INTO r (k, s) VALUES (5, 'x'), (6, 'y'), (5, 'z'), (NULL, NULL)")
        b = EncryptedRunner(backend, name, Schema.from_json(a.schema.to_json()), master=master)
        yield a, b
        a.close()
        b.close()


def test_concurrent_peels_happen_once(pair: tuple[EncryptedRunner, EncryptedRunner]) -> None:
    a, b = pair
    plans = [a.plan("SELECT s FROM r WHERE k = 5"), b.plan("SELECT s FROM r WHERE k = 5")]
    assert all(isinstance(p, PeelFirst) for p in plans)
    barrier = threading.Barrier(2)
    done: list[bool] = []

    def peel(runner: EncryptedRunner, plan: PeelFirst) -> None:
        barrier.wait()
        done.append(runner.run_peel(plan.peels[0]))

    threads = [
        threading.Thread(target=peel, args=(r, p)) for r, p in zip((a, b), plans, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(done) == [False, True]
    assert sorted(a.execute("SELECT s FROM r WHERE k = 5")) == [("x",), ("z",)]
    assert sorted(b.execute("SELECT s FROM r WHERE k = 5")) == [("x",), ("z",)]


def test_stale_metadata_never_peels_twice(pair: tuple[EncryptedRunner, EncryptedRunner]) -> None:
    a, b = pair
    before = a.plan("SELECT k FROM r WHERE id = 1")  # planned while k's Eq onion is at RND
    assert isinstance(before, Execute)
    assert b.execute("SELECT id FROM r WHERE k = 6") == [(2,)]
    assert b.peels == [f"{b.database}.r.k eq: RND -> DET"]
    # A still believes RND: its old plan decodes DET values anyway ...
    with a.conn.cursor() as cur:
        cur.execute(before.sql)
        assert before.decoder is not None and before.decoder.decode(cur.fetchall()) == [(5,)]
    # ... and its own peel finds the backend's record and only updates its metadata.
    assert sorted(a.execute("SELECT id FROM r WHERE k = 5")) == [(1,), (3,)]
    assert a.peels == []
    column = a.schema.table(a.database, "r").column("k")  # type: ignore[union-attr]
    assert column.onions["eq"] == "det"


def test_peel_during_a_transaction_reads_latest_rows(
    pair: tuple[EncryptedRunner, EncryptedRunner],
) -> None:
    a, b = pair
    a.execute("BEGIN")
    assert a.execute("SELECT s FROM r WHERE id = 1") == [("x",)]  # the snapshot starts here
    assert b.execute("SELECT id FROM r WHERE k = 6") == [(2,)]  # another proxy peels k
    # In A's snapshot k's Eq onion is still RND: a snapshot read finds nothing at DET ...
    stale = a.rewriter.plan(
        "SELECT s FROM r WHERE k = 5", schema=b.schema, crypto=a.crypto, database=a.database
    )
    assert isinstance(stale, Execute) and "LOCK IN SHARE MODE" not in (stale.sql or "")
    with a.conn.cursor() as cur:
        cur.execute(stale.sql)
        assert cur.fetchall() == ()
    # ... so after the schema changed mid-transaction, A reads the latest committed rows.
    assert sorted(a.execute("SELECT s FROM r WHERE k = 5")) == [("x",), ("z",)]
    assert "LOCK IN SHARE MODE" in a.backend_sql[-1]
    a.execute("COMMIT")
    assert sorted(a.execute("SELECT s FROM r WHERE k = 5")) == [("x",), ("z",)]
    assert "LOCK IN SHARE MODE" not in a.backend_sql[-1]


def test_writes_guard_exactly_the_onions_they_store_at_rnd() -> None:
    """Write plans name the onions they store at RND (the session share-locks their layer
    rows, so no other proxy's peel commits between plan and write); none once peeled."""
    from proxy.rewrite import ReadModifyWrite
    from tests.rewrite_support import DryRunner

    dry = DryRunner()
    dry.plan("CREATE TABLE r (id INT AUTO_INCREMENT PRIMARY KEY, k INT, s VARCHAR(20))")
    table = dry.schema.table("db", "r")
    assert table is not None
    k, s = table.column("k"), table.column("s")
    assert k is not None and s is not None

    def guarded(sql: str) -> set[tuple[int, str]]:
        plan = dry.plan(sql)
        assert isinstance(plan, Execute | ReadModifyWrite)
        return {(g[2], g[3]) for g in plan.guards}

    rnd = {(k.id, "eq"), (k.id, "ord"), (s.id, "eq"), (s.id, "ord")}
    assert guarded("INSERT INTO r (k, s) VALUES (1, 'a'), (2, 'b')") == rnd
    assert guarded("UPDATE r SET s = 'x' WHERE id = 1") == {(s.id, "eq"), (s.id, "ord")}
    assert guarded("UPDATE r SET k = k + 1 WHERE id = 1") == {(k.id, "eq"), (k.id, "ord")}
    assert guarded("DELETE FROM r WHERE id = 1") == set()
    dry.plan("SELECT id FROM r WHERE k = 1 AND s = 'a'")  # peels both Eq onions to DET
    assert dry.peels == ["db.r.k eq: RND -> DET", "db.r.s eq: RND -> DET"]
    assert guarded("INSERT INTO r (k, s) VALUES (3, 'c')") == {(k.id, "ord"), (s.id, "ord")}
    dry.plan("SELECT id FROM r WHERE k < 5")  # Ord of k to OPE
    assert guarded("INSERT INTO r (k, s) VALUES (4, 'd')") == {(s.id, "ord")}
