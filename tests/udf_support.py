"""Helpers shared by the tests/test_udf*.py modules (not a test module itself)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pymysql

from proxy import udfs
from proxy.devbackend import DEMO_PASSWORD, DEMO_USER, DevBackend

VECTORS = Path(__file__).resolve().parent / "vectors" / "onion"
T = TypeVar("T")


def load_vectors_from_file(path: Path, loader: Callable[[dict[str, Any]], T]) -> T:
    """pyca's pattern: tests see vector files only through a loader."""
    with path.open() as f:
        return loader(json.load(f))


def ensure_udfs(backend: DevBackend) -> None:
    """Builds the library and creates the functions; reloads them if the .so changed."""
    changed = udfs.build()
    with backend.admin() as conn:
        udfs.install_udfs(conn, replace=changed)


@contextmanager
def scratch_db(backend: DevBackend) -> Iterator[pymysql.Connection]:
    """A database of its own for fixtures wider than one test (the `database` fixture is
    per test), with a demo-user connection to it."""
    name = f"udf_{secrets.token_hex(6)}"
    with backend.admin() as admin, admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    conn = pymysql.connect(
        host="127.0.0.1",
        port=backend.port,
        user=DEMO_USER,
        password=DEMO_PASSWORD,
        database=name,
        autocommit=True,
    )
    try:
        yield conn
    finally:
        conn.close()
        with backend.admin() as admin, admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


def scalar(conn: pymysql.Connection, sql: str, args: Any = None) -> Any:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        row = cur.fetchone()
    return None if row is None else row[0]
