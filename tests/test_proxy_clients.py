"""Stock clients reach MariaDB through the proxy with no extra flags, with and without TLS."""

from __future__ import annotations

import asyncio
import ssl
import subprocess

import aiomysql
import mysql.connector
import pymysql
import pytest

from proxy.devbackend import DEMO_PASSWORD, DEMO_USER


def no_verify() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def mariadb_cli(
    proxy, *args: str, password: str = DEMO_PASSWORD
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["mariadb", "-h", proxy.host, "-P", str(proxy.port), "-u", DEMO_USER, *args],
        input=None,
        capture_output=True,
        text=True,
        timeout=30,
        env={"MYSQL_PWD": password, "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.parametrize("tls", [[], ["--ssl"], ["--skip-ssl"]], ids=["default", "tls", "plain"])
def test_mariadb_cli(proxy, database: str, tls: list[str]) -> None:
    r = mariadb_cli(proxy, *tls, "-D", database, "-e", "SELECT 40 + 2 AS answer, DATABASE()")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["answer\tDATABASE()", f"42\t{database}"]


def test_mariadb_cli_tls_is_really_tls(proxy) -> None:
    r = mariadb_cli(
        proxy, "--ssl", "--ssl-verify-server-cert", "--ssl-ca", str(proxy.cert), "-e", "\\s"
    )
    assert r.returncode == 0, r.stderr
    assert "Cipher in use" in r.stdout or "SSL:" in r.stdout
    assert "Not in use" not in r.stdout


def test_mariadb_cli_wrong_password(proxy) -> None:
    r = mariadb_cli(proxy, "-e", "SELECT 1", password="not-the-password")
    assert r.returncode == 1
    assert "ERROR 1045 (28000)" in r.stderr


@pytest.mark.parametrize("use_tls", [False, True], ids=["plain", "tls"])
def test_pymysql(proxy, database: str, use_tls: bool) -> None:
    conn = proxy.connect(database, ssl=no_verify() if use_tls else None)
    with conn.cursor() as cur:
        cur.execute("SELECT %s, DATABASE()", ("x",))
        assert cur.fetchone() == ("x", database)
        cur.execute("SHOW SESSION STATUS LIKE 'Threads_connected'")
        assert cur.fetchone()[0] == "Threads_connected"
    conn.close()


@pytest.mark.parametrize("use_tls", [False, True], ids=["plain", "tls"])
def test_mysql_connector(proxy, database: str, use_tls: bool) -> None:
    # The PyPI wheel for this platform ships the pure-Python driver only (no C extension).
    kw: dict[str, object] = {"ssl_disabled": not use_tls}
    if use_tls:
        kw["ssl_verify_cert"] = False
    conn = proxy.connector(database, **kw)
    cur = conn.cursor()
    cur.execute("SELECT 1 + 1, DATABASE()")
    assert cur.fetchall() == [(2, database)]
    cur.close()
    conn.close()


@pytest.mark.parametrize("use_tls", [False, True], ids=["plain", "tls"])
def test_aiomysql(proxy, database: str, use_tls: bool) -> None:
    async def run() -> tuple:
        conn = await aiomysql.connect(
            host=proxy.host,
            port=proxy.port,
            user=DEMO_USER,
            password=DEMO_PASSWORD,
            db=database,
            ssl=no_verify() if use_tls else None,
        )
        async with conn.cursor() as cur:
            await cur.execute("SELECT 7 * 6")
            row = await cur.fetchone()
        conn.close()
        return row

    assert asyncio.run(run()) == (42,)


def test_wrong_password_is_1045_for_every_driver(proxy) -> None:
    with pytest.raises(pymysql.err.OperationalError) as e:
        proxy.connect(password="wrong")
    assert e.value.args[0] == 1045
    with pytest.raises(mysql.connector.Error) as e2:
        proxy.connector(password="wrong")
    assert e2.value.errno == 1045


def test_unknown_user_is_1045(proxy) -> None:
    with pytest.raises(pymysql.err.OperationalError) as e:
        proxy.connect(user="nobody", password="x")
    assert e.value.args[0] == 1045


def test_empty_password_account(proxy, backend) -> None:
    with backend.admin() as a, a.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS 'nopass'@'localhost'")
    conn = proxy.connect(user="nopass", password="")
    with conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        assert cur.fetchone() == ("nopass@localhost",)  # the proxy uses the unix socket
    conn.close()
