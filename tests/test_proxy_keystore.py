"""Authentication by key through the real proxy: delivery routes, denial, rotation, sharing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import mysql.connector
import pymysql
import pytest

from client import connect as hr42_connect
from keystore import Keystore
from proxy.devbackend import DEMO_PASSWORD, DEMO_USER
from tests.conftest import start_proxy, stop_proxy

LOW_KDF = "keystore-kdf = 8192,1,1\n"


@pytest.fixture
def keyed(backend, tmp_path: Path):
    """A proxy with its own fresh keystore (cheap argon2 parameters for speed)."""
    ks_dir = tmp_path / "ks"
    ks_dir.mkdir(mode=0o700)
    p = start_proxy(
        backend, tmp_path / "proxy", extra=f"keystore = {ks_dir / 'keystore'}\n" + LOW_KDF
    )
    p.keystore = ks_dir / "keystore"
    yield p
    stop_proxy(p)


def login(p, **kw) -> pymysql.Connection:
    return hr42_connect(
        p.host, p.port, DEMO_USER, kw.pop("password", DEMO_PASSWORD), ssl_disabled=True, **kw
    )


def test_first_key_initializes_and_wrong_key_is_1045(keyed) -> None:
    conn = login(keyed, cryptdb_key=b"k1")
    conn.close()
    assert Keystore(keyed.keystore).list_principals() == [DEMO_USER]
    before = keyed.keystore.read_bytes()
    with pytest.raises(pymysql.err.OperationalError) as e:
        login(keyed, cryptdb_key=b"wrong")
    assert e.value.args[0] == 1045
    assert keyed.keystore.read_bytes() == before  # byte-identical
    login(keyed, cryptdb_key=b"k1").close()


def test_stock_cli_with_the_key_as_password(keyed) -> None:
    def cli(password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["mariadb", "-h", keyed.host, "-P", str(keyed.port), "-u", DEMO_USER, "-e", "SELECT 1"],
            capture_output=True,
            text=True,
            timeout=30,
            env={"MYSQL_PWD": password},
        )

    assert cli(DEMO_PASSWORD).returncode == 0  # initializes with the login password
    r = cli("wrong")
    assert r.returncode == 1 and "1045" in r.stderr


def test_connector_conn_attrs_deliver_the_key(keyed) -> None:
    login(keyed, cryptdb_key=b"attr-key").close()
    conn = keyed.connector(conn_attrs={"cryptdb_key": "attr-key"})
    conn.close()
    with pytest.raises(mysql.connector.Error) as e:
        keyed.connector(conn_attrs={"cryptdb_key": "nope"})
    assert e.value.errno == 1045


def test_rotation_by_hr42_old_key(keyed) -> None:
    login(keyed, cryptdb_key=b"old").close()
    login(keyed, cryptdb_key=b"new", old_cryptdb_key=b"old").close()
    with pytest.raises(pymysql.err.OperationalError):
        login(keyed, cryptdb_key=b"old")
    login(keyed, cryptdb_key=b"new").close()


def test_rotation_by_alter_user_changes_both(keyed, backend) -> None:
    with backend.admin() as a, a.cursor() as cur:
        for host in ("localhost", "127.0.0.1"):
            cur.execute(f"CREATE OR REPLACE USER 'rot'@'{host}' IDENTIFIED BY 'first'")
            # MariaDB wants CREATE USER even for ALTER USER CURRENT_USER()
            cur.execute(f"GRANT CREATE USER ON *.* TO 'rot'@'{host}'")
    login(keyed, cryptdb_key=b"bootstrap").close()  # the deployment exists; add rot's slot
    ks = Keystore(keyed.keystore)
    ks.add_user(ks.unlock(DEMO_USER, b"bootstrap"), "rot", b"first")
    conn = hr42_connect(keyed.host, keyed.port, "rot", "first", ssl_disabled=True)
    with conn.cursor() as cur:
        # (MariaDB 10.11 answers OK to ALTER USER CURRENT_USER() but keeps the password,
        # directly as through the proxy; name the account instead.)
        cur.execute("ALTER USER 'rot'@'localhost' IDENTIFIED BY 'second'")
    conn.close()
    with pytest.raises(pymysql.err.OperationalError):
        hr42_connect(keyed.host, keyed.port, "rot", "first", ssl_disabled=True)
    conn = hr42_connect(keyed.host, keyed.port, "rot", "second", ssl_disabled=True)
    with conn.cursor() as cur:
        cur.execute("SET PASSWORD = PASSWORD('third')")
    conn.close()
    hr42_connect(keyed.host, keyed.port, "rot", "third", ssl_disabled=True).close()
    ks.unlock("rot", b"third")  # the slot follows the password
    # and the backend account (the proxy logs in over the socket: 'rot'@'localhost')
    pymysql.connect(unix_socket=str(backend.socket), user="rot", password="third").close()


def test_refused_password_change_changes_neither(keyed, backend) -> None:
    with backend.admin() as a, a.cursor() as cur:
        for host in ("localhost", "127.0.0.1"):
            cur.execute(f"CREATE OR REPLACE USER 'weak'@'{host}' IDENTIFIED BY 'pw1'")
    login(keyed, cryptdb_key=b"bootstrap").close()
    ks = Keystore(keyed.keystore)
    ks.add_user(ks.unlock(DEMO_USER, b"bootstrap"), "weak", b"pw1")
    before = keyed.keystore.read_bytes()
    conn = hr42_connect(keyed.host, keyed.port, "weak", "pw1", ssl_disabled=True)
    with pytest.raises(pymysql.err.MySQLError), conn.cursor() as cur:
        cur.execute("ALTER USER CURRENT_USER() IDENTIFIED BY PASSWORD 'not-a-hash'")
    conn.close()
    assert keyed.keystore.read_bytes() == before
    hr42_connect(keyed.host, keyed.port, "weak", "pw1", ssl_disabled=True).close()


def test_two_proxies_share_one_keystore(keyed, backend, tmp_path: Path) -> None:
    second = start_proxy(
        backend, tmp_path / "second", extra=f"keystore = {keyed.keystore}\n" + LOW_KDF
    )
    try:
        login(keyed, cryptdb_key=b"one").close()
        login(second, cryptdb_key=b"one").close()  # B opens A's deployment
        login(second, cryptdb_key=b"two", old_cryptdb_key=b"one").close()  # rotate on B
        with pytest.raises(pymysql.err.OperationalError):
            login(keyed, cryptdb_key=b"one")  # A sees it at once: its cache is invalid
        login(keyed, cryptdb_key=b"two").close()
    finally:
        stop_proxy(second)


def test_loose_keystore_permissions_refuse_start(backend, tmp_path: Path) -> None:
    ks_dir = tmp_path / "loose"
    ks_dir.mkdir()
    ks_dir.chmod(0o755)  # explicit: another test may have left a strict umask behind
    with pytest.raises(RuntimeError, match="did not start") as e:
        start_proxy(backend, tmp_path / "p", extra=f"keystore = {ks_dir / 'keystore'}\n")
    assert "chmod 0700" in str(e.value)
