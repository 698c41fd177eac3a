"""Cost of the C UDFs inside MariaDB, against a baseline query over the same rows.

Run: `.venv/bin/python -m benchmarks udf`. Starts a private MariaDB (the dev backend), builds
and installs the UDFs, then times each UDF statement and `baseline` = the same scan with a
built-in function (LENGTH), so "UDF µs/row" is the UDF's own cost. Best of 3 runs.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pymysql
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from proxy import udfs
from proxy.devbackend import DEMO_PASSWORD, DEMO_USER, DevBackend
from tests.test_udf_hom import Paillier

ROWS = 10_000
RUNS = 3


def best(fn: Callable[[], object]) -> float:
    times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def report(
    label: str, conn: pymysql.Connection, sql: str, base: str, args: object, rows: int
) -> None:
    def run(q: str) -> Callable[[], object]:
        def go() -> object:
            with conn.cursor() as cur:
                cur.execute(q, args)
                return cur.fetchall()

        return go

    t, b = best(run(sql)), best(run(base))
    print(
        f"{label:<44} {t * 1000:8.1f} ms  (baseline {b * 1000:6.1f} ms)"
        f"  UDF {(t - b) / rows * 1e6:7.2f} µs/row"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, DevBackend(Path(tmp)) as backend:
        udfs.build()
        with backend.admin() as admin, admin.cursor() as cur:
            udfs.install_udfs(admin)
            cur.execute("CREATE DATABASE bench")
        conn = pymysql.connect(
            host="127.0.0.1",
            port=backend.port,
            user=DEMO_USER,
            password=DEMO_PASSWORD,
            database="bench",
            autocommit=True,
        )
        with conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE t (id INT PRIMARY KEY, iv BINARY(16), c_eq VARBINARY(64),"
                " big LONGBLOB, c_add VARBINARY(600), c_search BLOB)"
            )
        key = secrets.token_bytes(32)
        pk = Paillier.generate()
        words = [secrets.token_bytes(32) for _ in range(10)]
        rows = []
        for i in range(ROWS):
            iv = os.urandom(16)
            enc = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
            stored = bytearray(b"\x01")
            for w in words:
                salt = os.urandom(8)
                stored += salt + hmac.new(w, salt, hashlib.sha256).digest()[:16]
            rows.append(
                (i, iv, enc.update(os.urandom(32)), pk.encrypt(i - ROWS // 2), bytes(stored))
            )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO t (id, iv, c_eq, c_add, c_search) VALUES (%s, %s, %s, %s, %s)", rows
            )
            cur.execute("UPDATE t SET big = REPEAT(c_eq, 32768) WHERE id < 20")  # 1 MiB each

        n2 = pk.n2_bytes()
        print(f"{ROWS} rows; Paillier n = {pk.n.bit_length()} bits; 10 search entries per row")
        report(
            "rnd_decrypt 32 B",
            conn,
            "SELECT SUM(LENGTH(cryptdb_rnd_decrypt(c_eq, %s, iv))) FROM t",
            "SELECT SUM(LENGTH(c_eq)) + LENGTH(%s) FROM t",
            (key,),
            ROWS,
        )
        report(
            "rnd_decrypt 1 MiB (20 rows)",
            conn,
            "SELECT SUM(LENGTH(cryptdb_rnd_decrypt(big, %s, iv))) FROM t WHERE id < 20",
            "SELECT SUM(LENGTH(big)) + LENGTH(%s) FROM t WHERE id < 20",
            (key,),
            20,
        )
        report(
            "hom_sum 2048-bit over all rows",
            conn,
            "SELECT LENGTH(cryptdb_hom_sum(c_add, %s)) FROM t",
            "SELECT SUM(LENGTH(c_add)) + LENGTH(%s) FROM t",
            (n2,),
            ROWS,
        )
        report(
            "hom_sum GROUP BY MOD(id, 100)",
            conn,
            "SELECT MOD(id, 100), LENGTH(cryptdb_hom_sum(c_add, %s)) FROM t GROUP BY MOD(id, 100)",
            "SELECT MOD(id, 100), SUM(LENGTH(c_add)) + LENGTH(%s) FROM t GROUP BY MOD(id, 100)",
            (n2,),
            ROWS,
        )
        report(
            "hom_add (SELECT, no write)",
            conn,
            "SELECT SUM(LENGTH(cryptdb_hom_add(c_add, %s, %s))) FROM t",
            "SELECT SUM(LENGTH(c_add)) + LENGTH(%s) + LENGTH(%s) FROM t",
            (pk.encrypt(1), n2),
            ROWS,
        )
        report(
            "search_match (10 entries/row)",
            conn,
            "SELECT COUNT(*) FROM t WHERE cryptdb_search_match(c_search, %s) = 1",
            "SELECT COUNT(*) FROM t WHERE LENGTH(c_search) > LENGTH(%s)",
            (words[3],),
            ROWS,
        )
        t = time.perf_counter()
        with conn.cursor() as cur:
            cur.execute("UPDATE t SET c_add = cryptdb_hom_add(c_add, %s, %s)", (pk.encrypt(1), n2))
        print(
            f"{'UPDATE ... SET c_add = cryptdb_hom_add(...)':<44} "
            f"{(time.perf_counter() - t) * 1000:8.1f} ms for {ROWS} rows (one run, with writes)"
        )
        conn.close()


if __name__ == "__main__":
    main()
