"""proxy.execute: the per-plan cache of encoded column definitions; writes in a transaction
of the proxy's own."""

from __future__ import annotations

from dataclasses import replace

import pymysql
import pytest

from proxy import execute
from proxy.protocol.codec import lenenc_int
from proxy.rewrite.decode import Decoder, OutCol
from proxy.rewrite.show import ListDecoder
from tests.conftest import ProxyProcess

COLS = [
    OutCol(name="c", type=254, length=480, charset=45, table="t", org_name="c"),
    OutCol(name="k", type=3, length=11, table="t", org_name="k"),
]


def uncached(decoder: Decoder, backend: list[bytes] | None = None) -> list[bytes]:
    defs = decoder.definitions(backend or ())
    return [lenenc_int(len(defs))] + [d.encode() for d in defs]


def test_definitions_are_encoded_once_per_plan_column_list() -> None:
    a = Decoder(COLS, [], [], None, 0, "db")
    b = Decoder(COLS, [], [], None, 0, "db")  # another bind of the same plan
    first = execute.definition_packets(a)
    assert first == uncached(a)
    assert execute.definition_packets(b) is first


def test_another_database_or_column_list_is_encoded_anew() -> None:
    first = execute.definition_packets(Decoder(COLS, [], [], None, 0, "db"))
    other_db = Decoder(COLS, [], [], None, 0, "other")
    assert execute.definition_packets(other_db) == uncached(other_db) != first
    copy = Decoder(list(COLS[:1]), [], [], None, 0, "db")
    assert execute.definition_packets(copy) == uncached(copy)


def test_a_grown_column_list_is_not_served_stale() -> None:
    cols = list(COLS[:1])
    execute.definition_packets(Decoder(cols, [], [], None, 0, "db"))
    cols.append(COLS[1])
    d = Decoder(cols, [], [], None, 0, "db")
    assert execute.definition_packets(d) == uncached(d)


def test_columns_relaying_the_backend_definition_are_keyed_by_it() -> None:
    from proxy.protocol.codec import ColumnDefinition

    cols = [COLS[0], replace(COLS[1], relay=0)]

    def backend_def(length: int) -> list[bytes]:
        return [ColumnDefinition(name=b"k", type=3, length=length, table=b"t_1").encode()]

    a, b = backend_def(11), backend_def(20)
    first = execute.definition_packets(Decoder(cols, [], [], None, 0, "db"), a)
    assert first == uncached(Decoder(cols, [], [], None, 0, "db"), a)
    assert execute.definition_packets(Decoder(cols, [], [], None, 0, "db"), list(a)) is first
    other = execute.definition_packets(Decoder(cols, [], [], None, 0, "db"), b)
    assert other == uncached(Decoder(cols, [], [], None, 0, "db"), b) != first


def test_decoders_with_their_own_definitions_bypass_the_cache() -> None:
    d = ListDecoder([COLS[0]], rows=[("x",)], database="db")
    assert execute.definition_packets(d) == uncached(d)
    assert id(d.columns) not in execute._DEFINITIONS


def test_the_cache_is_bounded() -> None:
    for _ in range(execute._DEFINITIONS_MAX + 5):
        execute.definition_packets(Decoder(list(COLS), [], [], None, 0, "db"))
    assert len(execute._DEFINITIONS) <= execute._DEFINITIONS_MAX


# ---- live: writes in a transaction of the proxy's own (BEGIN pipelined with the layers'
# lock read, the write pipelined with its COMMIT) ----------------------------------------------

SERVER_STATUS_IN_TRANS = 0x0001


def q(conn: pymysql.Connection, sql: str, args: object = None) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def not_in_transaction(conn: pymysql.Connection) -> bool:
    return not conn.server_status & SERVER_STATUS_IN_TRANS and q(
        conn, "SELECT @@in_transaction"
    ) == [(0,)]


def test_autocommit_writes_commit_alone_and_failures_leave_no_transaction(
    encrypted_proxy: ProxyProcess, database: str
) -> None:
    conn = encrypted_proxy.connect(database, autocommit=True, charset="utf8mb4")
    try:
        q(conn, "CREATE TABLE w (id INT PRIMARY KEY, k INT NOT NULL, c VARCHAR(20))")
        with conn.cursor() as cur:  # onions at RND: guarded writes
            assert cur.execute("INSERT INTO w VALUES (1, 10, 'a'), (2, 20, 'b')") == 2
        assert not_in_transaction(conn)
        with pytest.raises(pymysql.err.IntegrityError) as e:
            q(conn, "INSERT INTO w VALUES (2, 99, 'dup')")
        assert e.value.args[0] == 1062
        assert not_in_transaction(conn)
        with conn.cursor() as cur:
            assert cur.execute("UPDATE w SET c = 'z' WHERE id = 1") == 1
            assert cur.execute("UPDATE w SET k = k + 1 WHERE id = 2") == 1  # read-modify-write
            assert cur.execute("UPDATE w SET k = k + 1 WHERE id = 42") == 0
        assert not_in_transaction(conn)
        other = encrypted_proxy.connect(database, autocommit=True, charset="utf8mb4")
        try:  # committed: another session sees every change
            assert q(other, "SELECT id, k, c FROM w ORDER BY id") == [(1, 10, "z"), (2, 21, "b")]
        finally:
            other.close()
        conn.begin()  # in the client's transaction: nothing of ours commits it
        q(conn, "INSERT INTO w VALUES (3, 30, 'c')")
        q(conn, "UPDATE w SET k = k + 1 WHERE id = 3")
        assert conn.server_status & SERVER_STATUS_IN_TRANS
        conn.rollback()
        assert q(conn, "SELECT COUNT(*) FROM w") == [(2,)]
    finally:
        conn.close()
