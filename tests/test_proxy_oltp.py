"""The sysbench oltp_read_write statements, fully encrypted, through the LIVE proxy inside
BEGIN ... COMMIT, each compared with the same statement straight on MariaDB on a plaintext
copy, by three real clients: PyMySQL, mysql-connector-python and the `mariadb` CLI. Results
and result metadata (names, MySQL types, lengths, flags, charsets: cursor.description, the
column definitions, the CLI's --column-type-info) must be the backend's own for the same
plaintext query.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mysql.connector
import pymysql
import pytest
from mysql.connector.constants import ClientFlag
from pymysql.constants import CLIENT

from keystore.files import write_private
from proxy.devbackend import DEMO_PASSWORD, DEMO_USER, DevBackend
from tests.conftest import ProxyProcess
from tests.rewrite_support import connect, extra_database

DDL = (
    "CREATE TABLE sbtest1 (id INTEGER NOT NULL AUTO_INCREMENT PRIMARY KEY, "
    "k INTEGER DEFAULT 0 NOT NULL, c CHAR(120) DEFAULT '' NOT NULL, "
    "pad CHAR(60) DEFAULT '' NOT NULL, INDEX k_1 (k))"
)
ROWS = 200
RANGE = 10
TRANSACTIONS = {"pymysql": 25, "connector": 10, "cli": 10}
SHAPES = [  # one of each SELECT, for the CLI's --column-type-info
    "SELECT c FROM sbtest1 WHERE id=7",
    "SELECT c FROM sbtest1 WHERE id BETWEEN 5 AND 14",
    "SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN 5 AND 14",
    "SELECT c FROM sbtest1 WHERE id BETWEEN 5 AND 14 ORDER BY c",
    "SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN 5 AND 14 ORDER BY c",
]


def chars(rng: random.Random, groups: int) -> str:
    """sysbench's c / pad values: groups of 11 digits joined by dashes."""
    return "-".join(f"{rng.randrange(10**11):011d}" for _ in range(groups))


class Oltp:
    """The statements of sysbench's oltp_read_write, seeded; `values` holds every c / pad."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.values: set[str] = set()

    def row(self) -> tuple[str, str]:
        c, pad = chars(self.rng, 10), chars(self.rng, 5)
        self.values |= {c, pad}
        return c, pad

    def load(self) -> list[str]:
        out = []
        for _ in range(ROWS // 50):
            rows = []
            for _ in range(50):
                c, pad = self.row()
                rows.append(f"({self.rng.randint(1, ROWS)}, '{c}', '{pad}')")
            out.append(f"INSERT INTO sbtest1 (k, c, pad) VALUES {', '.join(rows)}")
        return out

    def transaction(self) -> list[tuple[str, bool]]:
        """(statement, its result is fully ordered) for one transaction."""
        rng = self.rng

        def rid() -> int:
            return rng.randint(1, ROWS)

        def span() -> str:
            lo = rid()
            return f"id BETWEEN {lo} AND {lo + RANGE - 1}"

        out = [("BEGIN", False)]
        out += [(f"SELECT c FROM sbtest1 WHERE id={rid()}", True) for _ in range(10)]
        out.append((f"SELECT c FROM sbtest1 WHERE {span()}", False))
        out.append((f"SELECT SUM(k) FROM sbtest1 WHERE {span()}", True))
        out.append((f"SELECT c FROM sbtest1 WHERE {span()} ORDER BY c", True))
        out.append((f"SELECT DISTINCT c FROM sbtest1 WHERE {span()} ORDER BY c", True))
        out.append((f"UPDATE sbtest1 SET k=k+1 WHERE id={rid()}", False))
        c, _ = self.row()
        out.append((f"UPDATE sbtest1 SET c='{c}' WHERE id={rid()}", False))
        victim = rid()
        out.append((f"DELETE FROM sbtest1 WHERE id={victim}", False))
        c, pad = self.row()
        out.append(
            (
                f"INSERT INTO sbtest1 (id, k, c, pad) VALUES "
                f"({victim}, {rng.randint(1, ROWS)}, '{c}', '{pad}')",
                False,
            )
        )
        out.append(("COMMIT", False))
        return out



@pytest.fixture
def encrypted_db(backend: DevBackend) -> Iterator[str]:
    with extra_database(backend, "oltp") as name:
        yield name


# ---- PyMySQL ------------------------------------------------------------------------------


def _pymysql(conn: pymysql.Connection, sql: str, db: str) -> tuple[Any, Any]:
    """(rows or affected rows, the column definitions as sent, database name masked)."""
    with conn.cursor() as cur:
        cur.execute(sql)
        if not cur.description:
            return cur.rowcount, None
        fields = [
            (
                f.name,
                "<db>" if f.db == db.encode() else f.db,
                f.table_name,
                f.org_table,
                f.org_name,
                f.type_code,
                f.length,
                f.flags,
                f.scale,
                f.charsetnr,
            )
            for f in cur._result.fields
        ]
        return list(cur.fetchall()), (cur.description, fields)


def _same_rows(plain: Any, enc: Any, ordered: bool) -> bool:
    if not isinstance(plain, list) or ordered:
        return plain == enc
    return sorted(plain) == sorted(enc)


def test_oltp_pymysql_and_connector(
    backend: DevBackend, encrypted_proxy: ProxyProcess, database: str, encrypted_db: str
) -> None:
    work = Oltp(7)
    flags = CLIENT.FOUND_ROWS
    enc = encrypted_proxy.connect(
        encrypted_db, autocommit=True, charset="utf8mb4", client_flag=flags
    )
    plain = connect(backend, database, charset="utf8mb4", client_flag=flags)
    statements = 0
    try:
        for sql in [DDL, *work.load()]:
            assert _pymysql(enc, sql, encrypted_db)[0] == _pymysql(plain, sql, database)[0]
        for _ in range(TRANSACTIONS["pymysql"]):
            for sql, ordered in work.transaction():
                p_rows, p_meta = _pymysql(plain, sql, database)
                e_rows, e_meta = _pymysql(enc, sql, encrypted_db)
                assert _same_rows(p_rows, e_rows, ordered), sql
                assert p_meta == e_meta, sql
                statements += 1
        # mysql-connector-python (pure Python), the same statements on the same tables.
        c_enc = encrypted_proxy.connector(
            encrypted_db, autocommit=True, client_flags=[ClientFlag.FOUND_ROWS]
        )
        c_plain = mysql.connector.connect(
            host="127.0.0.1",
            port=backend.port,
            user=DEMO_USER,
            password=DEMO_PASSWORD,
            database=database,
            use_pure=True,
            ssl_disabled=True,
            autocommit=True,
            client_flags=[ClientFlag.FOUND_ROWS],
        )
        try:
            for _ in range(TRANSACTIONS["connector"]):
                for sql, ordered in work.transaction():
                    expected, got = _connector(c_plain, sql), _connector(c_enc, sql)
                    assert _same_rows(expected[0], got[0], ordered), sql
                    assert expected[1] == got[1], sql  # cursor.description
                    statements += 1
        finally:
            c_enc.close()
            c_plain.close()
        final = "SELECT * FROM sbtest1 ORDER BY id"
        assert _pymysql(enc, final, encrypted_db) == _pymysql(plain, final, database)
    finally:
        enc.close()
        plain.close()
    assert statements == 20 * (TRANSACTIONS["pymysql"] + TRANSACTIONS["connector"])
    _check_peels_and_ciphertext(backend, encrypted_proxy, encrypted_db, work.values)


def _connector(conn: Any, sql: str) -> tuple[Any, Any]:
    cur = conn.cursor()
    try:
        cur.execute(sql)
        if cur.description is None:
            return cur.rowcount, None
        return cur.fetchall(), cur.description
    finally:
        cur.close()


def _check_peels_and_ciphertext(
    backend: DevBackend, p: ProxyProcess, db: str, values: set[str]
) -> None:
    """One peel, c's Eq onion to DET (DISTINCT); no c / pad value in the backend's rows."""
    audit = p.keystore.with_name(p.keystore.name + ".audit")  # type: ignore[attr-defined]
    mine = [
        e for line in audit.read_text().splitlines() if (e := json.loads(line))["database"] == db
    ]
    assert [
        (e["table"], e["column"], e["onion"], e["from"], e["to"], e["outcome"]) for e in mine
    ] == [("sbtest1", "c", "eq", "RND", "DET", "peeled")]
    conn = connect(backend, db)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW TABLES")
            (table,) = [t for (t,) in cur.fetchall() if re.fullmatch(r"t_\d+", t)]
            cur.execute(f"SELECT * FROM `{table}`")
            cells = [cell for row in cur.fetchall() for cell in row if isinstance(cell, bytes)]
    finally:
        conn.close()
    assert len(cells) > ROWS
    assert [v for v in values for cell in cells if v.encode() in cell] == []


# ---- the mariadb CLI ----------------------------------------------------------------------


def _cli(defaults: Path, db: str, *args: str, script: str) -> str:
    r = subprocess.run(
        [
            "mariadb",
            f"--defaults-file={defaults}",  # the password is in the 0600 file, not argv
            "--default-character-set=utf8mb4",
            "-D",
            db,
            *args,
        ],
        input=script,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def _defaults(path: Path, port: int) -> Path:
    write_private(
        path,
        f"[client]\nhost = 127.0.0.1\nport = {port}\nuser = {DEMO_USER}\n"
        f"password = {DEMO_PASSWORD}\n",
    )
    return path


def test_oltp_mariadb_cli(
    backend: DevBackend,
    encrypted_proxy: ProxyProcess,
    database: str,
    encrypted_db: str,
    tmp_path: Path,
) -> None:
    work = Oltp(11)
    via_proxy = _defaults(tmp_path / "proxy.cnf", encrypted_proxy.port)
    direct = _defaults(tmp_path / "direct.cnf", backend.port)
    assert (via_proxy.stat().st_mode & 0o777) == 0o600
    setup = ";\n".join([DDL, *work.load()]) + ";\n"
    assert _cli(via_proxy, encrypted_db, "--batch", script=setup) == ""
    assert _cli(direct, database, "--batch", script=setup) == ""
    statements = [sql for _ in range(TRANSACTIONS["cli"]) for sql, _ in work.transaction()]
    script = ";\n".join(statements) + ";\n"
    got = _cli(via_proxy, encrypted_db, "--batch", script=script)
    expected = _cli(direct, database, "--batch", script=script)
    assert got == expected  # (the unordered range: both scan the primary key in order)
    lines = got.splitlines()
    assert lines.count("c") == 13 * TRANSACTIONS["cli"]  # a header per SELECT c
    assert lines.count("SUM(k)") == TRANSACTIONS["cli"]
    # Column metadata as the CLI prints it (table mode: --column-type-info).
    for sql in SHAPES:
        info = _cli(via_proxy, encrypted_db, "--table", "--column-type-info", script=sql)
        want = _cli(direct, database, "--table", "--column-type-info", script=sql)
        assert info.replace(encrypted_db, "<db>") == want.replace(database, "<db>"), sql
        assert "Type:       " in info
