"""Differences from a direct connection that the end-to-end tests found in the session layer
(proxy/session_state.py, proxy/connection.py), fixed: utf8mb3 result sets are refused with
advice, COM_FIELD_LIST of an encrypted table is answered from the schema."""

from __future__ import annotations

from collections.abc import Iterator

import pymysql
import pytest
from pymysql.constants import COMMAND
from pymysql.protocol import FieldDescriptorPacket

from proxy.devbackend import DevBackend
from tests.conftest import ProxyProcess
from tests.rewrite_support import connect, extra_database

DDL = "CREATE TABLE t (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, c VARCHAR(20))"
INSERT = "INSERT INTO t (c) VALUES ('h\U0001f600llo'), ('plain \u00e9')"


@pytest.fixture
def copies(
    backend: DevBackend, encrypted_proxy: ProxyProcess, database: str
) -> Iterator[tuple[str, str]]:
    """(encrypted database, plaintext database), both holding table t."""
    with extra_database(backend, "gap") as enc_db:
        enc = encrypted_proxy.connect(enc_db, autocommit=True, charset="utf8mb4")
        plain = connect(backend, database, charset="utf8mb4")
        try:
            for conn in (enc, plain):
                with conn.cursor() as cur:
                    cur.execute(DDL)
                    cur.execute(INSERT)
        finally:
            enc.close()
            plain.close()
        yield enc_db, database


def test_utf8mb3_results(
    backend: DevBackend, encrypted_proxy: ProxyProcess, copies: tuple[str, str]
) -> None:
    enc_db, plain_db = copies

    def read(conn: pymysql.Connection) -> object:
        with conn.cursor() as cur:
            try:
                cur.execute("SELECT c FROM t ORDER BY id")
            except pymysql.MySQLError as e:
                return e.args[0]
            return [f.charsetnr for f in cur._result.fields], cur.fetchall()

    enc = encrypted_proxy.connect(enc_db, charset="utf8mb3")
    plain = connect(backend, plain_db, charset="utf8mb3")
    try:
        expected, got = read(plain), read(enc)
    finally:
        enc.close()
        plain.close()
    assert expected == ([33], (("h?llo",), ("plain \u00e9",)))
    assert got in (expected, 7004)  # MariaDB's conversion, or "SET NAMES utf8mb4"


def _field_list(conn: pymysql.Connection, table: str) -> list[tuple[str, int]] | int:
    """COM_FIELD_LIST (the mariadb CLI's auto-rehash): (name, type) per column, or the error."""
    try:
        conn._execute_command(COMMAND.COM_FIELD_LIST, table.encode() + b"\0")
        out = []
        while True:
            pkt = conn._read_packet()
            if pkt.is_eof_packet():
                return out
            f = FieldDescriptorPacket(pkt.get_all_data(), "utf8")
            out.append((f.name, f.type_code))
    except pymysql.MySQLError as e:
        return e.args[0]


def test_field_list_of_an_encrypted_table(
    backend: DevBackend, encrypted_proxy: ProxyProcess, copies: tuple[str, str]
) -> None:
    enc_db, plain_db = copies
    enc = encrypted_proxy.connect(enc_db, charset="utf8mb4")
    plain = connect(backend, plain_db, charset="utf8mb4")
    try:
        expected, got = _field_list(plain, "t"), _field_list(enc, "t")
    finally:
        enc.close()
        plain.close()
    assert expected == [("id", 3), ("c", 253)]
    assert got == expected
