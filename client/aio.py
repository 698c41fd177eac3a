"""aiomysql connections whose handshake response is a HandshakeResponse42."""

from __future__ import annotations

import ssl
from typing import Any

import aiomysql

from client.keys import HR42Writer, KeyLike


class AsyncHR42Connection(HR42Writer, aiomysql.Connection):
    """An `aiomysql.Connection` that sends `cryptdb_key` / `old_cryptdb_key` in its handshake."""

    def __init__(
        self,
        *,
        cryptdb_key: KeyLike | None = None,
        old_cryptdb_key: KeyLike | None = None,
        allow_insecure_transport: bool = False,
        **kwargs: Any,
    ) -> None:
        self._hr42_setup(cryptdb_key, old_cryptdb_key, allow_insecure_transport)
        super().__init__(**kwargs)

    async def _request_authentication(self) -> None:
        self._hr42_pending = True
        try:
            await super()._request_authentication()
        finally:
            self._hr42_pending = False

    def _hr42_tls_context(self) -> ssl.SSLContext | None:
        return getattr(self, "_ssl_context", None)

    def _hr42_peer(self) -> object:
        writer = getattr(self, "_writer", None)
        return writer.get_extra_info("peername") if writer is not None else None


async def connect_async(
    host: str = "127.0.0.1",
    port: int = 3307,
    user: str | None = None,
    password: str = "",
    database: str | None = None,
    *,
    cryptdb_key: KeyLike | None = None,
    old_cryptdb_key: KeyLike | None = None,
    ssl: Any = None,
    allow_insecure_transport: bool = False,
    connection_class: type[AsyncHR42Connection] = AsyncHR42Connection,
    **aiomysql_kwargs: Any,
) -> AsyncHR42Connection:
    """The aiomysql counterpart of `client.connect` (`ssl`: an `ssl.SSLContext`)."""
    conn = connection_class(
        host=host,
        port=port,
        user=user,
        password=password,
        db=database,
        ssl=ssl,
        cryptdb_key=cryptdb_key,
        old_cryptdb_key=old_cryptdb_key,
        allow_insecure_transport=allow_insecure_transport,
        **aiomysql_kwargs,
    )
    await conn._connect()
    return conn
