"""Shared fixtures: one real MariaDB per test run, a fresh database per test."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pymysql
import pytest

from proxy.devbackend import DEMO_PASSWORD, DEMO_USER, DevBackend


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevBackend]:
    server = DevBackend(tmp_path_factory.mktemp("mariadb"))
    server.start()
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
    conn = pymysql.connect(
        host="127.0.0.1", port=backend.port, user=DEMO_USER, password=DEMO_PASSWORD,
        database=database, autocommit=True,
    )
    yield conn
    conn.close()
