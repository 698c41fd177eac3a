"""Rewriter cost per statement: parse + plan (shape-cache miss) vs bind only (hit).

Run: `.venv/bin/python -m benchmarks rewrite`. Pure CPU, no database. Best of 3 batches,
microseconds per statement. "scan" is the literal scanner alone (the cache key); "parse" is
sqlglot alone; "miss" is scan + parse + plan + bind; "hit" is scan + bind. Bind includes the
encryption of every constant (HOM for INSERT into Add onions dominates those rows); "decode"
is per result row. The sysbench table: id plain AUTO_INCREMENT, k INT (eq/ord/add), c
CHAR(120) and pad CHAR(60) (eq/ord/search); k's Ord onion at OPE and c's Eq at DET, as after
a warm-up.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import sqlglot

from onion import KeyCache, PaillierPrivateKey
from proxy.rewrite import Crypto, Execute, PeelFirst, Rewriter
from proxy.rewrite.literals import scan
from proxy.schema import Schema

RUNS = 3
DDL = (
    "CREATE TABLE sbtest1 (id INTEGER NOT NULL AUTO_INCREMENT, k INTEGER DEFAULT '0' NOT NULL, "
    "c CHAR(120) DEFAULT '' NOT NULL, pad CHAR(60) DEFAULT '' NOT NULL, PRIMARY KEY (id), "
    "KEY k_1 (k)) ENGINE=InnoDB"
)


def _chars(rng: random.Random, groups: int) -> str:
    return "-".join(f"{rng.randrange(10**11):011d}" for _ in range(groups))


def statements(rng: random.Random) -> dict[str, Callable[[], str]]:
    def rid() -> int:
        return rng.randint(1, 10000)

    def rows(n: int) -> str:
        return ", ".join(f"({rid()}, '{_chars(rng, 10)}', '{_chars(rng, 5)}')" for _ in range(n))

    return {
        "point select": lambda: f"SELECT c FROM sbtest1 WHERE id={rid()}",
        "range": lambda: f"SELECT c FROM sbtest1 WHERE id BETWEEN {rid()} AND {rid()}",
        "sum range": lambda: f"SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN {rid()} AND {rid()}",
        "order by c": lambda: (
            f"SELECT c FROM sbtest1 WHERE id BETWEEN {rid()} AND {rid()} ORDER BY c"
        ),
        "k range (OPE)": lambda: f"SELECT id FROM sbtest1 WHERE k BETWEEN {rid()} AND {rid()}",
        "update k=k+1": lambda: f"UPDATE sbtest1 SET k=k+1 WHERE id={rid()}",
        "update c": lambda: f"UPDATE sbtest1 SET c='{_chars(rng, 10)}' WHERE id={rid()}",
        "delete": lambda: f"DELETE FROM sbtest1 WHERE id={rid()}",
        "insert 1 row": lambda: f"INSERT INTO sbtest1 (k, c, pad) VALUES {rows(1)}",
        "insert 10 rows": lambda: f"INSERT INTO sbtest1 (k, c, pad) VALUES {rows(10)}",
        "pass-through": lambda: f"SELECT @@version, {rid()}",
    }


def best(fn: Callable[[], object], n: int) -> float:
    out = float("inf")
    for _ in range(RUNS):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        out = min(out, time.perf_counter() - t)
    return out / n * 1e6


def main() -> None:
    rng = random.Random(1)
    schema = Schema()
    schema.paillier = PaillierPrivateKey.generate().to_bytes().hex()
    crypto = Crypto(KeyCache(bytes(32)), schema)
    warm = Rewriter()

    def plan(rw: Rewriter, sql: str) -> object:
        return rw.plan(sql, schema=schema, crypto=crypto, database="db")

    for op in plan(warm, DDL).ops:  # type: ignore[attr-defined]
        schema.apply(op)
    for sql in (
        "SELECT id FROM sbtest1 WHERE k = 1",
        "SELECT DISTINCT c FROM sbtest1",
        "SELECT id FROM sbtest1 WHERE k < 1",
    ):
        p = plan(warm, sql)
        while isinstance(p, PeelFirst):
            for peel in p.peels:
                schema.apply(peel.op())
            p = plan(warm, sql)
    crypto.paillier.precompute()
    print(f"{'statement':<16}{'scan':>8}{'parse':>8}{'miss':>9}{'hit':>9}  (us)")
    for name, make in statements(rng).items():
        sqls = [make() for _ in range(200)]
        it = iter(sqls * 100)
        n = 60 if "10 rows" in name else 150
        cached = Rewriter()
        t_scan = best(lambda it=it: scan(next(it)), n)
        t_parse = best(lambda it=it: sqlglot.parse_one(next(it), read="mysql"), n)
        t_miss = best(lambda it=it: plan(Rewriter(), next(it)), n)
        t_hit = best(lambda it=it, c=cached: plan(c, next(it)), n)
        print(f"{name:<16}{t_scan:8.1f}{t_parse:8.1f}{t_miss:9.1f}{t_hit:9.1f}")
    p = plan(warm, "SELECT c FROM sbtest1 WHERE id BETWEEN 1 AND 100")
    assert isinstance(p, Execute) and p.decoder is not None
    cc = crypto.column(1, 2, schema.table("db", "sbtest1").column("c"))  # type: ignore[union-attr]
    rows = [[cc.det(_chars(rng, 10))] for _ in range(100)]
    t_dec = best(lambda: p.decoder.decode(rows), 20) / 100  # type: ignore[union-attr]
    print(f"decode one CHAR(120) value at DET: {t_dec:.1f} us")


if __name__ == "__main__":
    main()
