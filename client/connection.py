"""PyMySQL connections whose handshake response is a HandshakeResponse42."""

from __future__ import annotations

import ssl
from typing import Any

import pymysql.connections

from client.keys import HR42Writer, KeyLike


class HR42Connection(HR42Writer, pymysql.connections.Connection):
    """A `pymysql.Connection` that sends `cryptdb_key` / `old_cryptdb_key` in its handshake.

    Takes every PyMySQL keyword argument plus the three below. Reconnects (`ping(True)`)
    send the keys again.
    """

    def __init__(
        self,
        *,
        cryptdb_key: KeyLike | None = None,
        old_cryptdb_key: KeyLike | None = None,
        allow_insecure_transport: bool = False,
        **kwargs: Any,
    ) -> None:
        # Before PyMySQL's __init__: it connects (and so handshakes) unless defer_connect.
        self._hr42_setup(cryptdb_key, old_cryptdb_key, allow_insecure_transport)
        super().__init__(**kwargs)

    def _request_authentication(self) -> None:
        self._hr42_pending = True
        try:
            super()._request_authentication()
        finally:
            self._hr42_pending = False

    def _hr42_tls_context(self) -> ssl.SSLContext | None:
        return getattr(self, "ctx", None)

    def _hr42_peer(self) -> object:
        try:
            return self._sock.getpeername()
        except (AttributeError, OSError):
            return None


def connect(
    host: str = "127.0.0.1",
    port: int = 3307,
    user: str | None = None,
    password: str | bytes = "",
    database: str | None = None,
    *,
    cryptdb_key: KeyLike | None = None,
    old_cryptdb_key: KeyLike | None = None,
    ssl: Any = None,
    allow_insecure_transport: bool = False,
    connection_class: type[HR42Connection] = HR42Connection,
    **pymysql_kwargs: Any,
) -> HR42Connection:
    """Open a PyMySQL connection to the cryptdb proxy carrying the HR42 key fields.

    `cryptdb_key` (bytes, or str sent as UTF-8) unlocks the keystore; `old_cryptdb_key` is
    the key being replaced when changing it. `ssl` is PyMySQL's: an `ssl.SSLContext` or a
    dict; PyMySQL's default is opportunistic, unverified TLS, and `ssl_disabled=True` turns
    TLS off. The keys go only to a loopback address, a Unix socket, or a server whose TLS
    certificate was verified, unless `allow_insecure_transport=True`. Everything else goes
    to `pymysql.Connection` unchanged.
    """
    return connection_class(
        host=host,
        port=port,
        user=user,
        password=password,
        database=database,
        ssl=ssl,
        cryptdb_key=cryptdb_key,
        old_cryptdb_key=old_cryptdb_key,
        allow_insecure_transport=allow_insecure_transport,
        **pymysql_kwargs,
    )
