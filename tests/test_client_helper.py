"""client.connect / client.connect_async against the real proxy: HR42 fields byte-exact."""

from __future__ import annotations

import asyncio
import pickle
import socket
import ssl
import threading
from collections.abc import Iterator

import pymysql
import pytest

import client
from client.aio import AsyncHR42Connection
from client.connection import HR42Connection
from proxy.devbackend import DEMO_PASSWORD, DEMO_USER
from proxy.protocol.handshake import HandshakeResponse42, SSLRequest, parse_handshake_response

# Every length-prefix case worth having: NUL and 0xFB bytes inside, and > 250 bytes, so
# the length itself takes the 0xFC form.
KEY = bytes(range(256)) + b"\xfb\x00"
OLD_KEY = "старый-ключ-🔑"


def tls_context(proxy) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(proxy.cert))
    return ctx  # the dev certificate names 127.0.0.1, so hostname checking stays on


def packets(stream: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos + 4 <= len(stream):
        n = int.from_bytes(stream[pos : pos + 3], "little")
        out.append(stream[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return out


class Recording(HR42Connection):
    """Records the bytes handed to the socket layer (before TLS encrypts them)."""

    def _write_bytes(self, data: bytes) -> None:
        self.__dict__.setdefault("sent", []).append(bytes(data))
        super()._write_bytes(data)


class Relay:
    """A TCP relay in front of the proxy recording what the client sends on the wire."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.client_bytes = bytearray()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                down, _ = self.listener.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._pipe, args=(down, up, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(up, down, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        try:
            while data := src.recv(65536):
                if record:
                    self.client_bytes += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def relay(proxy) -> Iterator[Relay]:
    r = Relay(proxy.port)
    yield r
    r.close()


def parse_first(server_caps: int, payloads: list[bytes]) -> HandshakeResponse42:
    response = parse_handshake_response(server_caps, payloads[0])
    if isinstance(response, SSLRequest):
        response = parse_handshake_response(server_caps, payloads[1])
    assert isinstance(response, HandshakeResponse42)
    return response


def check_query(conn: pymysql.Connection, database: str) -> None:
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))")
        cur.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
        assert cur.rowcount == 2
        cur.execute("SELECT v, DATABASE() FROM t ORDER BY id")
        assert cur.fetchall() == (("a", database), ("b", database))


@pytest.mark.parametrize("use_tls", [False, True], ids=["plain", "tls"])
def test_connect_sends_hr42_byte_exact(proxy, database: str, use_tls: bool) -> None:
    conn = client.connect(
        proxy.host, proxy.port, DEMO_USER, DEMO_PASSWORD, database,
        cryptdb_key=KEY, old_cryptdb_key=OLD_KEY,
        connection_class=Recording, autocommit=True,
        **({"ssl": tls_context(proxy)} if use_tls else {"ssl_disabled": True}),
    )
    try:
        check_query(conn, database)
        if use_tls:
            with conn.cursor() as cur:
                cur.execute("SHOW STATUS LIKE 'Ssl_cipher'")  # the backend's view: not ours
            assert conn._secure
        payloads = [p for chunk in conn.sent for p in packets(chunk)]
        hr = parse_first(conn.server_capabilities, payloads)
        assert hr.cryptdb_key == KEY
        assert hr.old_cryptdb_key == OLD_KEY.encode()
        assert (hr.username, hr.database) == (DEMO_USER, database)
        assert hr.connect_attrs["_client_name"] == "pymysql"
        # Exactly once: no later packet (auth continuation, queries) carries the trailer.
        assert sum(KEY in p for p in payloads) == 1
    finally:
        conn.close()


def test_hr42_on_the_wire(proxy, relay: Relay, database: str) -> None:
    """Without TLS, the bytes a relay sees are exactly an HR42 with our keys."""
    conn = client.connect(
        "127.0.0.1", relay.port, DEMO_USER, DEMO_PASSWORD, database, cryptdb_key="k1",
        ssl_disabled=True,
    )
    try:
        check_query(conn, database)
        hr = parse_first(conn.server_capabilities, packets(bytes(relay.client_bytes)))
        assert (hr.cryptdb_key, hr.old_cryptdb_key) == (b"k1", None)
    finally:
        conn.close()


def test_without_keys_is_plain_hr41(proxy, relay: Relay) -> None:
    conn = client.connect("127.0.0.1", relay.port, DEMO_USER, DEMO_PASSWORD, ssl_disabled=True)
    conn.close()
    hr = parse_first(conn.server_capabilities, packets(bytes(relay.client_bytes)))
    assert (hr.cryptdb_key, hr.old_cryptdb_key) == (None, None)


def test_reconnect_sends_keys_again(proxy) -> None:
    conn = client.connect(
        proxy.host, proxy.port, DEMO_USER, DEMO_PASSWORD, cryptdb_key=KEY,
        ssl=tls_context(proxy), connection_class=Recording,
    )
    conn.close()
    conn.connect()  # PyMySQL's reconnect
    conn.ping()
    conn.close()
    assert sum(KEY in chunk for chunk in conn.sent) == 2


@pytest.mark.parametrize("use_tls", [False, True], ids=["plain", "tls"])
def test_connect_async(proxy, database: str, use_tls: bool) -> None:
    class Recorder(AsyncHR42Connection):
        def write_packet(self, payload: bytes) -> None:
            super().write_packet(payload)
            self.__dict__.setdefault("sent", []).append(payload)

        def _write_bytes(self, data: bytes) -> None:
            self.__dict__.setdefault("raw", []).append(bytes(data))
            super()._write_bytes(data)

    async def run() -> None:
        conn = await client.connect_async(
            proxy.host, proxy.port, DEMO_USER, DEMO_PASSWORD, database,
            cryptdb_key=KEY, old_cryptdb_key=OLD_KEY,
            ssl=tls_context(proxy) if use_tls else None,
            connection_class=Recorder, autocommit=True,
        )
        try:
            async with conn.cursor() as cur:
                await cur.execute("SELECT 6 * 7, DATABASE()")
                assert await cur.fetchone() == (42, database)
            payloads = [p for chunk in conn.raw for p in packets(chunk)]
            hr = parse_first(conn.server_capabilities, payloads)
            assert (hr.cryptdb_key, hr.old_cryptdb_key) == (KEY, OLD_KEY.encode())
            assert hr.connect_attrs["_client_name"] == "aiomysql"
        finally:
            conn.close()

    asyncio.run(run())


class FarAway(HR42Connection):
    """Pretends the proxy is on another machine (the address check only; the server is real)."""

    def _hr42_peer(self) -> object:
        return ("192.0.2.7", 3307)


def test_keys_need_verified_tls_to_a_remote_server(proxy) -> None:
    unverified = ssl.create_default_context()
    unverified.check_hostname, unverified.verify_mode = False, ssl.CERT_NONE
    for transport in ({"ssl_disabled": True}, {"ssl": unverified}, {}):
        with pytest.raises(pymysql.err.OperationalError) as e:
            client.connect(
                proxy.host, proxy.port, DEMO_USER, DEMO_PASSWORD, cryptdb_key=KEY,
                connection_class=FarAway, **transport,
            )
        assert e.value.args[0] == 2026 and "TLS" in e.value.args[1]
        assert KEY.hex() not in str(e.value)
    client.connect(
        proxy.host, proxy.port, DEMO_USER, DEMO_PASSWORD, cryptdb_key=KEY,
        ssl=tls_context(proxy), connection_class=FarAway,
    ).close()


def test_keys_never_shown(proxy) -> None:
    secret = "hunter2-key"
    conn = client.connect(
        proxy.host, proxy.port, DEMO_USER, DEMO_PASSWORD, cryptdb_key=secret,
        old_cryptdb_key=secret + "-old",
    )
    try:
        shown = repr(conn) + str(conn) + repr(vars(conn))
        assert secret not in shown and secret.encode() not in shown.encode()
        with pytest.raises(TypeError, match="pickled"):
            pickle.dumps(conn._hr42_trailer)
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("kw", "error"),
    [
        ({"cryptdb_key": 12345}, TypeError),
        ({"cryptdb_key": ""}, ValueError),
        ({"old_cryptdb_key": "s3cr3t-old"}, ValueError),
    ],
)
def test_bad_keys_rejected_without_echo(kw: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error) as e:
        HR42Connection(host="127.0.0.1", port=1, user="x", defer_connect=True, **kw)
    assert "12345" not in str(e.value) and "s3cr3t" not in str(e.value)
