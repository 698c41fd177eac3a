"""Encrypted OLTP: the sysbench oltp_read_write table and statements, measured three ways in
one run — direct MariaDB, through the proxy on a plaintext table (pass-through), and through
the proxy on the same table created encrypted — printed as ratios.

Workloads: `point` (primary-key point selects) and `mix` (one transaction: 10 point selects,
a BETWEEN range, SUM over a range, ORDER BY c over a range, DISTINCT c over a range,
UPDATE k = k + 1, UPDATE c, DELETE and INSERT of the same id). 1 and 4 client processes.
Warm-up first: the first query on each column peels an onion, which is not what is timed.
The encrypted table is also measured through a second proxy on the same keystore with
`workers = 2` (proxy/workers.py): one event loop is one core.
`BENCH_SECONDS` (default 3) sets each measurement's length; `KINDS=point` runs one workload
(`write`: autocommit UPDATEs of an RND column, not run by default).
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pymysql

from benchmarks.clients import run_clients
from proxy.devbackend import DEMO_PASSWORD, DEMO_USER, DevBackend

SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
KINDS = os.environ.get("KINDS", "point,mix").split(",")
ROWS = 10_000
DDL = (
    "CREATE TABLE sbtest1 (id INTEGER NOT NULL AUTO_INCREMENT PRIMARY KEY, "
    "k INTEGER DEFAULT 0 NOT NULL, c CHAR(120) DEFAULT '' NOT NULL, "
    "pad CHAR(60) DEFAULT '' NOT NULL, INDEX k_1 (k))"
)
RANGES = (
    "SELECT c FROM sbtest1 WHERE id BETWEEN %s AND %s",
    "SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN %s AND %s",
    "SELECT c FROM sbtest1 WHERE id BETWEEN %s AND %s ORDER BY c",
    "SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN %s AND %s ORDER BY c",
)


def _c(r: random.Random) -> str:
    return "-".join(f"{r.randint(0, 10**10):011d}" for _ in range(10))[:119]


def point(cur: Any, r: random.Random) -> None:
    cur.execute("SELECT c FROM sbtest1 WHERE id = %s", (r.randint(1, ROWS),))
    cur.fetchall()


def mix(cur: Any, r: random.Random) -> None:
    cur.execute("BEGIN")
    for _ in range(10):
        point(cur, r)
    a = r.randint(1, ROWS - 100)
    for sql in RANGES:
        cur.execute(sql, (a, a + 99))
        cur.fetchall()
    cur.execute("UPDATE sbtest1 SET k = k + 1 WHERE id = %s", (r.randint(1, ROWS),))
    cur.execute("UPDATE sbtest1 SET c = %s WHERE id = %s", (_c(r), r.randint(1, ROWS)))
    j = r.randint(1, ROWS)
    cur.execute("DELETE FROM sbtest1 WHERE id = %s", (j,))
    cur.execute(
        "INSERT INTO sbtest1 (id, k, c, pad) VALUES (%s, %s, %s, %s)",
        (j, r.randint(1, ROWS), _c(r), "p" * 59),
    )
    cur.execute("COMMIT")


def write(cur: Any, r: random.Random) -> None:
    """An autocommit UPDATE of a column no query reads: its onions stay at RND, so the
    proxy locks their layer rows in a transaction of its own (a guarded write)."""
    cur.execute("UPDATE sbtest1 SET pad = %s WHERE id = %s", (_c(r)[:59], r.randint(1, ROWS)))


WORKLOADS = {"point": point, "mix": mix, "write": write}


def _connect(port: int, db: str) -> pymysql.Connection:
    # No TLS on any path: the dev MariaDB offers none, and PyMySQL >= 1.2 would otherwise
    # negotiate it with the proxy only, timing TLS instead of the proxy.
    return pymysql.connect(
        host="127.0.0.1", port=port, user=DEMO_USER, password=DEMO_PASSWORD, database=db,
        charset="utf8mb4", autocommit=True, ssl_disabled=True,
    )  # fmt: skip


def _client(port: int, db: str, kind: str, seconds: float, seed: int) -> float:
    conn = _connect(port, db)
    cur, r, fn = conn.cursor(), random.Random(seed), WORKLOADS[kind]
    n, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        fn(cur, r)
        n += 1
    conn.close()
    return n / seconds


def measure(port: int, db: str, kind: str, conns: int, seconds: float = SECONDS) -> float:
    return run_clients(_client, [(port, db, kind, seconds, seed) for seed in range(conns)])


def load(conn: pymysql.Connection) -> None:
    r = random.Random(1)
    with conn.cursor() as cur:
        cur.execute(DDL)
        for base in range(0, ROWS, 100):
            rows = ", ".join(
                f"({base + i + 1}, {r.randint(1, ROWS)}, '{_c(r)}', '{'p' * 59}')"
                for i in range(100)
            )
            cur.execute(f"INSERT INTO sbtest1 (id, k, c, pad) VALUES {rows}")


def make_databases(backend: DevBackend, tmp: Path) -> Path:
    """The `plain` and `enc` databases, and a private directory for the keystore."""
    with backend.admin() as a, a.cursor() as cur:
        cur.execute("CREATE DATABASE plain")
        cur.execute("CREATE DATABASE enc")
    ks = tmp / "ks"
    ks.mkdir(mode=0o700)
    return ks


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.conftest import LOW_KDF, start_proxy, stop_proxy

    with tempfile.TemporaryDirectory() as tmp:
        backend = DevBackend(Path(tmp) / "db")
        backend.start()
        proxy = proxy2 = None
        try:
            ks = make_databases(backend, Path(tmp))
            proxy = start_proxy(
                backend, Path(tmp) / "proxy", extra=f"keystore = {ks / 'keystore'}\n" + LOW_KDF
            )
            proxy2 = start_proxy(
                backend,
                Path(tmp) / "proxy2",
                extra=f"keystore = {ks / 'keystore'}\nworkers = 2\n" + LOW_KDF,
            )
            for port, db, label in ((backend.port, "plain", "plaintext"),
                                    (proxy.port, "enc", "encrypted")):  # fmt: skip
                start = time.perf_counter()
                load(_connect(port, db))
                print(f"load {ROWS} rows {label}: {time.perf_counter() - start:.1f} s")
            measure(proxy.port, "enc", "mix", 1, seconds=1.0)  # warm-up: peels, plan cache
            measure(proxy2.port, "enc", "mix", 4, seconds=1.0)  # and the workers' caches
            print(
                f"{'workload':<8} {'conns':>5} {'direct/s':>9} {'pass/s':>8} {'enc/s':>8} "
                f"{'enc2w/s':>8} {'enc/pass':>8} {'enc/dir':>8} {'enc2w/dir':>9} {'pass/dir':>8}"
            )
            for kind in KINDS:
                for conns in (1, 4):
                    d = measure(backend.port, "plain", kind, conns)
                    p = measure(proxy.port, "plain", kind, conns)
                    e = measure(proxy.port, "enc", kind, conns)
                    e2 = measure(proxy2.port, "enc", kind, conns)
                    print(
                        f"{kind:<8} {conns:>5} {d:>9.0f} {p:>8.0f} {e:>8.0f} {e2:>8.0f} "
                        f"{e / p:>8.2f} {e / d:>8.2f} {e2 / d:>9.2f} {p / d:>8.2f}",
                        flush=True,
                    )
        finally:
            if proxy2 is not None:
                stop_proxy(proxy2)
            if proxy is not None:
                stop_proxy(proxy)
            backend.stop()


if __name__ == "__main__":
    main()
