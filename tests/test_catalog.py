"""The shared schema in keystore metadata: freshness, compare-and-swap, audit log."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from keystore import KdfParams, Keystore
from proxy.catalog import Catalog
from tests.rewrite_support import DryRunner

LOW = KdfParams(8192, 1, 1)


@pytest.fixture
def keystore(tmp_path: Path) -> tuple[Keystore, object]:
    d = tmp_path / "ks"
    d.mkdir(mode=0o700)
    ks = Keystore(d / "keystore", kdf=LOW)
    return ks, ks.initialize("u", b"key")


def create_ops(sql: str) -> list[dict]:
    dry = DryRunner("db")
    return dry.rewriter.plan(sql, schema=dry.schema, crypto=dry.crypto, database="db").ops


def test_two_catalogs_see_each_others_changes(keystore) -> None:
    ks, master = keystore
    a = Catalog(ks, master, None)
    b = Catalog(Keystore(ks.path, kdf=LOW), master, None)
    a.apply(create_ops("CREATE TABLE t (x INT)"))
    assert b.current().table("db", "t") is not None
    assert a.current().token == b.current().token


def test_conflicting_save_is_reapplied_on_top(keystore) -> None:
    ks, master = keystore
    a = Catalog(ks, master, None)
    b = Catalog(Keystore(ks.path, kdf=LOW), master, None)
    a.apply(create_ops("CREATE TABLE t (x INT)"))
    # b has not looked since: its save conflicts, reloads, and keeps a's table too.
    ops = create_ops("CREATE TABLE u (y INT)")
    ops[0]["table"]["id"] = 1000  # distinct ids, as the DDL lock guarantees across proxies
    b.apply(ops)
    fresh = Catalog(Keystore(ks.path, kdf=LOW), master, None).current()
    assert fresh.table("db", "t") is not None and fresh.table("db", "u") is not None


def test_layer_recorded_elsewhere_is_not_applied_twice(keystore) -> None:
    ks, master = keystore
    a = Catalog(ks, master, None)
    a.apply(create_ops("CREATE TABLE t (x INT)"))
    b = Catalog(Keystore(ks.path, kdf=LOW), master, None)
    op = {"op": "set_layer", "database": "db", "table": "t", "column": "x", "onion": "eq",
          "from": "rnd", "to": "det"}  # fmt: skip
    a.apply([op])
    b.apply([op])  # b's stale schema says RND: reloading shows it is done
    assert b.current().table("db", "t").column("x").onions["eq"] == "det"


def test_audit_log_is_private_json_lines(keystore, tmp_path: Path) -> None:
    ks, master = keystore
    log = tmp_path / "ks" / "audit"
    cat = Catalog(ks, master, log)
    peel = SimpleNamespace(database="db", table="t", column="x", onion="eq",
                           from_layer="rnd", to_layer="det",
                           describe=lambda: "db.t.x eq: RND -> DET")  # fmt: skip
    old = os.umask(0o022)
    try:
        cat.audit("alice", "127.0.0.1:5", peel, "peeled")
        cat.audit("bob", "127.0.0.1:6", peel, "already peeled")
    finally:
        os.umask(old)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [(e["user"], e["from"], e["to"], e["outcome"]) for e in lines] == [
        ("alice", "RND", "DET", "peeled"),
        ("bob", "RND", "DET", "already peeled"),
    ]
    assert all(e["table"] == "t" and e["column"] == "x" and e["time"] for e in lines)


def test_peel_gate_orders_writes_and_peels() -> None:
    import asyncio

    from proxy.catalog import PeelBusy, PeelGate

    async def main() -> list[str]:
        gate, log = PeelGate(), []

        async def write(name: str, hold: float) -> None:
            async with gate.write():
                log.append(f"{name} start")
                await asyncio.sleep(hold)
                log.append(f"{name} end")

        async def peel() -> None:
            async with gate.peel():
                log.append("peel")
                await asyncio.sleep(0.05)

        first = asyncio.create_task(write("w1", 0.1))
        await asyncio.sleep(0.01)
        peeling = asyncio.create_task(peel())
        await asyncio.sleep(0.01)
        second = asyncio.create_task(write("w2", 0))  # waits: a peel is pending
        await asyncio.gather(first, peeling, second)
        # A peel that cannot start in time gives up and lets writes go on.
        async with gate.write():
            try:
                async with gate.peel(timeout=0.05):
                    log.append("never")
            except PeelBusy:
                log.append("busy")
        return log

    assert asyncio.run(main()) == ["w1 start", "w1 end", "peel", "w2 start", "w2 end", "busy"]
