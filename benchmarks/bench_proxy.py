"""Pass-through cost: `SELECT 1` and a primary-key point select, 1 and 8 connections,
direct to MariaDB vs through the proxy, measured in the same run and printed as ratios.

Each connection is driven by its own process (PyMySQL), so the client's GIL is not the
bottleneck; the proxy is a separate `cryptdb serve` process, as in production.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pymysql

from benchmarks.clients import run_clients
from proxy.devbackend import DEMO_PASSWORD, DEMO_USER, DevBackend

SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
QUERIES = {
    "SELECT 1": "SELECT 1",
    "point select": "SELECT id, k, c, pad FROM sbtest WHERE id = %s",
}


def _client(port: int, sql: str, seconds: float) -> float:
    conn = pymysql.connect(  # no TLS on either path (the dev MariaDB offers none)
        host="127.0.0.1", port=port, user=DEMO_USER, password=DEMO_PASSWORD, database="bench",
        ssl_disabled=True,
    )  # fmt: skip
    cur = conn.cursor()
    n, i = 0, 0
    args_needed = "%s" in sql
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(50):
            i = i % 10000 + 1
            cur.execute(sql, (i,) if args_needed else None)
            cur.fetchall()
        n += 50
    conn.close()
    return n / seconds


def measure(port: int, sql: str, connections: int) -> float:
    return run_clients(_client, [(port, sql, SECONDS)] * connections)


def main() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.conftest import start_proxy, stop_proxy

    with tempfile.TemporaryDirectory() as tmp:
        backend = DevBackend(Path(tmp) / "db")
        backend.start()
        proxy = None
        try:
            with backend.admin() as a, a.cursor() as cur:
                cur.execute("CREATE DATABASE bench")
                cur.execute(
                    "CREATE TABLE bench.sbtest (id INT PRIMARY KEY, k INT, c CHAR(120), "
                    "pad CHAR(60), KEY (k))"
                )
                cur.execute(
                    "INSERT INTO bench.sbtest SELECT seq, seq % 1000, REPEAT('c', 120), "
                    "REPEAT('p', 60) FROM bench.seq_1_to_10000"
                )
            proxy = start_proxy(backend, Path(tmp) / "proxy")
            print(f"{'query':<14} {'conns':>5} {'direct q/s':>11} {'proxy q/s':>10} {'ratio':>6}")
            for name, sql in QUERIES.items():
                for conns in (1, 8):
                    direct = measure(backend.port, sql, conns)
                    through = measure(proxy.port, sql, conns)
                    print(
                        f"{name:<14} {conns:>5} {direct:>11.0f} {through:>10.0f} "
                        f"{through / direct:>6.2f}",
                        flush=True,
                    )
        finally:
            if proxy is not None:
                stop_proxy(proxy)
            backend.stop()


if __name__ == "__main__":
    main()
