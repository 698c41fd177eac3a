"""The MariaDB side: mariadb-dump and mariadb subprocesses, catalogue queries, empty checks.

Credentials only ever travel in the cnf file (`--defaults-file`, which must come first on
the command line); argv and the environment carry no password, so `ps` shows none.
`--defaults-file` rather than `--defaults-extra-file`: the connection is exactly what the
file says, whatever /etc/mysql holds.
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pymysql

SYSTEM_DATABASES = {"information_schema", "performance_schema", "mysql", "sys"}
SpawnHook = Callable[[subprocess.Popen[bytes]], None]


class BackendError(Exception):
    """mariadb-dump or the mariadb client failed, or the server said no."""


def _binary(*names: str) -> str:
    for name in names:
        for found in (shutil.which(name), f"/usr/bin/{name}"):
            if found and Path(found).exists():
                return found
    raise BackendError(f"{names[0]} not found (install mariadb-client)")


def connect(cnf: Path, database: str | None = None) -> pymysql.Connection:
    """A PyMySQL connection from the [client] group of `cnf`."""
    try:
        return pymysql.connect(
            read_default_file=str(cnf), database=database, autocommit=True, charset="utf8mb4"
        )
    except pymysql.MySQLError as e:
        raise BackendError(f"cannot connect with {cnf}: {e}") from None


def quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def dump_argv(cnf: Path, database: str) -> list[str]:
    return [
        _binary("mariadb-dump", "mysqldump"),
        f"--defaults-file={cnf}",
        "--single-transaction",  # one consistent InnoDB snapshot, no table locks
        "--quick",
        "--routines",
        "--events",
        "--triggers",
        "--hex-blob",  # ciphertext columns as 0x..., immune to charset conversion
        "--default-character-set=utf8mb4",
        "--skip-dump-date",
        "--no-tablespaces",
        database,  # without --databases: no CREATE DATABASE/USE, so any target name works
    ]


def client_argv(cnf: Path, database: str) -> list[str]:
    return [
        _binary("mariadb", "mysql"),
        f"--defaults-file={cnf}",
        "--batch",
        "--binary-mode",
        "--default-character-set=utf8mb4",
        f"--database={database}",
    ]


@dataclass
class Process:
    """A subprocess whose stderr is drained in the background (the tail kept for errors)."""

    argv: list[str]
    stdin: int | None = None
    stdout: int | None = None
    on_spawn: SpawnHook | None = None
    popen: subprocess.Popen[bytes] = field(init=False)
    _err: collections.deque[bytes] = field(init=False)

    def __post_init__(self) -> None:
        self._err = collections.deque(maxlen=64)
        self.popen = subprocess.Popen(
            self.argv, stdin=self.stdin, stdout=self.stdout, stderr=subprocess.PIPE,
            bufsize=0, close_fds=True,
        )
        assert self.popen.stderr is not None
        self._thread = threading.Thread(target=self._drain, args=(self.popen.stderr,), daemon=True)
        self._thread.start()
        if self.on_spawn:
            self.on_spawn(self.popen)

    def _drain(self, stream: IO[bytes]) -> None:
        for line in stream:
            self._err.append(line)

    @property
    def errors(self) -> str:
        return b"".join(self._err).decode("utf-8", "replace").strip()

    def wait(self, what: str) -> None:
        rc = self.popen.wait()
        self._thread.join(timeout=5)
        if rc != 0:
            raise BackendError(f"{what} failed (exit {rc}): {self.errors or 'no message'}")

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()


def list_databases(conn: pymysql.Connection) -> list[str]:
    with conn.cursor() as cur:
        cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME")
        return [r[0] for r in cur.fetchall() if r[0] not in SYSTEM_DATABASES]


def describe(conn: pymysql.Connection, database: str) -> dict[str, Any]:
    """Charset, tables, exact row counts (in one snapshot) and on-disk sizes of a database."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME "
            "FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
            (database,),
        )
        row = cur.fetchone()
        if row is None:
            raise BackendError(f"database {database!r} does not exist on the server")
        charset, collation = row
        cur.execute(
            "SELECT TABLE_NAME, TABLE_TYPE, ENGINE, "
            "COALESCE(DATA_LENGTH, 0) + COALESCE(INDEX_LENGTH, 0) "
            "FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME",
            (database,),
        )
        tables = [
            {"name": n, "type": "view" if t == "VIEW" else "table", "engine": e, "bytes": int(b)}
            for n, t, e, b in cur.fetchall()
        ]
        # Counts come from our own snapshot, taken just before the dump's: exact when nothing
        # writes during the backup, otherwise an estimate (the checksums are what is exact).
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        try:
            for t in tables:
                if t["type"] == "table":
                    ident = f"{quote_ident(database)}.{quote_ident(t['name'])}"
                    cur.execute(f"SELECT COUNT(*) FROM {ident}")
                    t["rows"] = int(cur.fetchone()[0])
        finally:
            cur.execute("COMMIT")
    return {"name": database, "charset": charset, "collation": collation, "tables": tables}


def contents(conn: pymysql.Connection, database: str) -> list[str]:
    """What a database holds (tables, views, routines, events); empty if it does not exist."""
    found: list[str] = []
    with conn.cursor() as cur:
        for sql, kind in (
            ("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s", "table"),
            ("SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA=%s",
             "routine"),
            ("SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA=%s", "event"),
        ):
            cur.execute(sql, (database,))
            found += [f"{kind} {r[0]}" for r in cur.fetchall()]
    return found


def database_exists(conn: pymysql.Connection, database: str) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s", (database,))
        return cur.fetchone() is not None


def create_database(conn: pymysql.Connection, database: str, charset: str, collation: str) -> None:
    with conn.cursor() as cur:
        cur.execute(
            f"CREATE DATABASE {quote_ident(database)} "
            f"CHARACTER SET {quote_ident(charset)} COLLATE {quote_ident(collation)}"
        )


def empty_database(conn: pymysql.Connection, database: str) -> None:
    """Remove everything a failed restore put into a database that was empty before."""
    db = quote_ident(database)
    with conn.cursor() as cur:
        cur.execute("SET SESSION FOREIGN_KEY_CHECKS = 0")
        cur.execute(
            "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s",
            (database,),
        )
        for name, kind in sorted(cur.fetchall(), key=lambda r: r[1] != "VIEW"):
            what = "VIEW" if kind == "VIEW" else "TABLE"
            cur.execute(f"DROP {what} IF EXISTS {db}.{quote_ident(name)}")
        cur.execute(
            "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES "
            "WHERE ROUTINE_SCHEMA=%s",
            (database,),
        )
        for name, kind in cur.fetchall():
            cur.execute(f"DROP {kind} IF EXISTS {db}.{quote_ident(name)}")
        cur.execute(
            "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA=%s", (database,)
        )
        for (name,) in cur.fetchall():
            cur.execute(f"DROP EVENT IF EXISTS {db}.{quote_ident(name)}")
        cur.execute("SET SESSION FOREIGN_KEY_CHECKS = 1")


def drop_database(conn: pymysql.Connection, database: str) -> None:
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(database)}")


def row_counts(conn: pymysql.Connection, database: str) -> dict[str, int]:
    out = {}
    with conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA=%s AND TABLE_TYPE <> 'VIEW'",
            (database,),
        )
        for (name,) in cur.fetchall():
            cur.execute(f"SELECT COUNT(*) FROM {quote_ident(database)}.{quote_ident(name)}")
            out[name] = int(cur.fetchone()[0])
    return out


def server_version(conn: pymysql.Connection) -> str:
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        return str(cur.fetchone()[0])
