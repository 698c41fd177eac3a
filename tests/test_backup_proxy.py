"""Issue 6's end-to-end promise: after a backup is restored into a fresh MariaDB, a proxy on
the restored keystore answers every query as the original deployment did."""

from __future__ import annotations

from pathlib import Path

import pymysql

from backup import create_backup, restore_backup
from backup.testing import make_keys
from proxy.devbackend import DevBackend
from tests.conftest import LOW_KDF, start_proxy, stop_proxy

SETUP = [
    "CREATE TABLE patients (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40), "
    "age INT, ward INT COMMENT 'cryptdb: join=ward', bill DECIMAL(10,2), "
    "note VARCHAR(80), seen DATE)",
    "CREATE TABLE wards (ward INT COMMENT 'cryptdb: join=ward', title VARCHAR(20))",
    "INSERT INTO wards VALUES (1, 'north'), (2, 'south'), (3, 'east')",
]
BEFORE = [  # run before the backup: they peel onions, which the backup must carry
    "SELECT name FROM patients WHERE age = 41",
    "SELECT name, age FROM patients WHERE age BETWEEN 30 AND 50 ORDER BY age, id",
    "SELECT ward, COUNT(*), SUM(bill) FROM patients GROUP BY ward",
    "SELECT p.name, w.title FROM patients p JOIN wards w ON p.ward = w.ward "
    "WHERE p.id <= 5 ORDER BY p.id",
]
AFTER = [  # new after the restore: they peel other onions on the restored data
    "SELECT id FROM patients WHERE note LIKE '%fever%' ORDER BY id",
    "SELECT MIN(seen), MAX(seen) FROM patients",
    "SELECT DISTINCT name FROM patients WHERE seen >= '2024-06-01' ORDER BY name",
    "SELECT AVG(bill) FROM patients WHERE ward = 2",
]


def rows(conn: pymysql.Connection, sql: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return sorted(cur.fetchall(), key=repr) if "ORDER BY" not in sql else list(
            cur.fetchall())  # fmt: skip


def fill(conn: pymysql.Connection) -> None:
    for sql in SETUP:
        rows(conn, sql)
    values = ", ".join(
        f"('{['ann', 'bob', 'cy', 'dee'][i % 4]}', {20 + i % 50}, {1 + i % 3}, "
        f"{i * 7 % 1000}.{i % 100:02d}, '{['fever and cough', 'broken arm', 'check up'][i % 3]}', "
        f"'2024-{1 + i % 12:02d}-{1 + i % 28:02d}')"
        for i in range(300)
    )
    rows(conn, f"INSERT INTO patients (name, age, ward, bill, note, seen) VALUES {values}")


def test_restored_deployment_answers_as_before(backend, database: str, tmp_path: Path) -> None:
    ks_dir = tmp_path / "ks"
    ks_dir.mkdir(mode=0o700)
    original = start_proxy(
        backend, tmp_path / "p1", extra=f"keystore = {ks_dir / 'keystore'}\n" + LOW_KDF
    )
    fresh = restored = None
    try:
        conn = original.connect(database, autocommit=True, charset="utf8mb4")
        fill(conn)
        expected = {sql: rows(conn, sql) for sql in BEFORE}
        keys = make_keys(tmp_path / "keys")
        out = tmp_path / "backup.age"
        create_backup(out, [keys.recipient], backend.service_cnf, keys.signing_key(),
                      databases=[database], keystore=ks_dir / "keystore")  # fmt: skip
        expected.update({sql: rows(conn, sql) for sql in AFTER})  # the original's answers
        conn.close()

        fresh = DevBackend(tmp_path / "fresh")
        fresh.start()
        ks2 = tmp_path / "ks2" / "keystore"
        restore_backup(out, [keys.identity], keys.trusted(), fresh.service_cnf,
                       databases=[database], keystore_out=ks2)  # fmt: skip
        restored = start_proxy(fresh, tmp_path / "p2", extra=f"keystore = {ks2}\n" + LOW_KDF)
        conn = restored.connect(database, autocommit=True, charset="utf8mb4")
        assert all(expected.values())  # every query has rows to compare
        for sql in BEFORE + AFTER:
            assert rows(conn, sql) == expected[sql], sql
        # Writes work too, and read back.
        rows(conn, "INSERT INTO patients (name, age, ward) VALUES ('eve', 41, 3)")
        assert ("eve",) in rows(conn, "SELECT name FROM patients WHERE age = 41")
        conn.close()
        # The restored server holds ciphertext only.
        with fresh.admin() as a, a.cursor() as cur:
            cur.execute(f"SHOW TABLES FROM `{database}`")
            assert all(n.startswith(("t_", "_cryptdb")) for (n,) in cur.fetchall())
    finally:
        for p in (original, restored):
            if p is not None:
                stop_proxy(p)
        if fresh is not None:
            fresh.stop()
