"""Shared fixtures: one real MariaDB per test run, a fresh database per test."""

from __future__ import annotations

import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest
from pymysql.constants import CLIENT

from keystore.files import write_private
from proxy.devbackend import DEMO_PASSWORD, DEMO_USER, REPO, DevBackend, free_port
from tests.rewrite_support import EncryptedRunner, connect, extra_database
from tests.udf_support import ensure_udfs


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevBackend]:
    server = DevBackend(tmp_path_factory.mktemp("mariadb"))
    server.start()
    # Built and (re)loaded once per run: every encrypted test needs them.
    ensure_udfs(server)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def database(backend: DevBackend) -> Iterator[str]:
    """A fresh, empty database on the backend, dropped after the test."""
    name = f"t_{secrets.token_hex(6)}"
    with backend.admin() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    try:
        yield name
    finally:
        with backend.admin() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def direct(backend: DevBackend, database: str) -> Iterator[pymysql.Connection]:
    """A PyMySQL connection straight to MariaDB (the plaintext side of an oracle)."""
    conn = connect(backend, database)
    yield conn
    conn.close()


@pytest.fixture
def plain(backend: DevBackend, database: str) -> Iterator[pymysql.Connection]:
    """The plaintext side of a rewriter oracle: affected rows counted as matched rows, as
    the encrypted side's fresh IVs make them (docs/rewrite.md, Affected rows)."""
    conn = connect(backend, database, client_flag=CLIENT.FOUND_ROWS)
    yield conn
    conn.close()


@pytest.fixture
def encrypted(backend: DevBackend) -> Iterator[EncryptedRunner]:
    """The rewriter executed straight on MariaDB (no proxy) in a database of its own."""
    with extra_database(backend) as name:
        runner = EncryptedRunner(backend, name)
        yield runner
        runner.close()


@dataclass
class ProxyProcess:
    """A `cryptdb serve` subprocess in front of the test backend."""

    host: str
    port: int
    process: subprocess.Popen[bytes]
    config: Path
    cert: Path
    log: Path

    def connect(self, database: str | None = None, **kw: object) -> pymysql.Connection:
        kw.setdefault("user", DEMO_USER)
        kw.setdefault("password", DEMO_PASSWORD)
        return pymysql.connect(host=self.host, port=self.port, database=database, **kw)

    def connector(self, database: str | None = None, **kw: object):  # -> MySQLConnection
        """mysql-connector-python (pure-Python driver; the wheel has no C extension)."""
        import mysql.connector

        kw.setdefault("user", DEMO_USER)
        kw.setdefault("password", DEMO_PASSWORD)
        kw.setdefault("ssl_disabled", True)
        return mysql.connector.connect(
            host=self.host, port=self.port, database=database, use_pure=True, **kw
        )

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")


def start_proxy(backend: DevBackend, state: Path, *, extra: str = "") -> ProxyProcess:
    from proxy.tls import ensure_self_signed

    cert, key = ensure_self_signed(state / "tls")
    port = free_port()
    config = state / "proxy.cnf"
    write_private(
        config,
        backend.service_cnf.read_text()
        + f"\n[cryptdb]\nlisten = 127.0.0.1:{port}\ntls-cert = {cert}\ntls-key = {key}\n{extra}",
    )
    log = state / "proxy.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "proxy.cli", "serve", "--defaults-file", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"proxy did not start:\n{log.read_text()}") from None
            time.sleep(0.05)
    return ProxyProcess("127.0.0.1", port, proc, config, cert, log)


def stop_proxy(p: ProxyProcess) -> None:
    p.process.send_signal(signal.SIGTERM)
    try:
        p.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.process.kill()
        p.process.wait()


@pytest.fixture(scope="session")
def proxy(backend: DevBackend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    p = start_proxy(backend, tmp_path_factory.mktemp("proxy"))
    try:
        yield p
    finally:
        stop_proxy(p)


LOW_KDF = "keystore-kdf = 8192,1,1\n"


@pytest.fixture(scope="session")
def encrypted_proxy(
    backend: DevBackend, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    """A proxy with a keystore: tables created through it are encrypted. The first login
    (demo/demo) initializes the deployment; cheap argon2 parameters for speed."""
    state = tmp_path_factory.mktemp("encproxy")
    ks_dir = state / "ks"
    ks_dir.mkdir(mode=0o700)
    p = start_proxy(backend, state / "proxy", extra=f"keystore = {ks_dir / 'keystore'}\n" + LOW_KDF)
    p.keystore = ks_dir / "keystore"  # type: ignore[attr-defined]
    try:
        yield p
    finally:
        stop_proxy(p)
