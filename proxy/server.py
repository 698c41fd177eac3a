"""The listening socket: accepts clients, runs one ClientConnection task each."""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import ssl

import aiomysql

from keystore import DEFAULT_KDF, KdfParams, Keystore, UnlockCache
from keystore.files import check_private
from proxy import auth
from proxy.config import ProxyConfig
from proxy.connection import ClientConnection, ServerContext
from proxy.keys import KeyGate
from proxy.protocol.codec import make_err
from proxy.protocol.framing import frame

log = logging.getLogger(__name__)
FALLBACK_VERSION = "10.11.0-MariaDB"


async def backend_version(cfg: ProxyConfig) -> str:
    """The backend's version string (clients pick features by it), via the service account."""
    if cfg.service is None:
        return FALLBACK_VERSION
    try:
        conn = await aiomysql.connect(
            host=cfg.backend.host,
            port=cfg.backend.port,
            unix_socket=cfg.backend.unix_socket,
            user=cfg.service.user,
            password=cfg.service.password,
            connect_timeout=cfg.backend.connect_timeout,
            autocommit=None,
        )
    except Exception:
        log.warning("backend unreachable by the service account; announcing %s", FALLBACK_VERSION)
        return FALLBACK_VERSION
    try:
        return conn.get_server_info()
    finally:
        conn.close()


class ProxyServer:
    """One proxy process. With several workers, each gets the listening socket and the RSA
    key pair made before they forked (a client may cache the public key and meet another
    worker on reconnect), and connection ids that no other worker hands out."""

    def __init__(
        self,
        cfg: ProxyConfig,
        tls: ssl.SSLContext | None = None,
        *,
        sock: socket.socket | None = None,
        rsa: auth.RsaKeyPair | None = None,
        worker: int = 0,
    ) -> None:
        self.cfg = cfg
        self._tls = tls
        self._sock = sock
        self._rsa = rsa
        self._server: asyncio.Server | None = None
        self._ids = itertools.count(worker + 1, max(cfg.workers, 1))
        self._tasks: set[asyncio.Task[None]] = set()
        self.ctx: ServerContext | None = None

    def _key_gate(self) -> KeyGate | None:
        if self.cfg.keystore is None:
            return None
        kdf = KdfParams(*self.cfg.keystore_kdf) if self.cfg.keystore_kdf else DEFAULT_KDF
        if self.cfg.keystore.parent.exists():
            check_private(self.cfg.keystore.parent)  # refuse to start on loose permissions
        if self.cfg.keystore.exists():
            check_private(self.cfg.keystore)
        audit = self.cfg.audit_log or self.cfg.keystore.with_name(self.cfg.keystore.name + ".audit")
        if audit.exists():
            check_private(audit)
        return KeyGate(Keystore(self.cfg.keystore, kdf=kdf, cache=UnlockCache()), audit)

    async def start(self) -> None:
        version = await backend_version(self.cfg)
        self.ctx = ServerContext(
            backend=self.cfg.backend,
            server_version=f"{version}-cryptdb" if "cryptdb" not in version else version,
            rsa=self._rsa or await asyncio.to_thread(auth.RsaKeyPair),
            tls=self._tls,
            handshake_timeout=self.cfg.handshake_timeout,
            keys=self._key_gate(),
        )
        if self._sock is not None:
            self._server = await asyncio.start_server(self._accept, sock=self._sock)
        else:
            self._server = await asyncio.start_server(
                self._accept, self.cfg.listen_host, self.cfg.listen_port, reuse_address=True
            )
        log.info("listening on %s:%d", self.cfg.listen_host, self.port)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self.ctx is not None
        if len(self._tasks) >= self.cfg.max_connections:
            out = bytearray()
            frame(make_err(1040, "08004", "Too many connections"), 0, out)
            writer.write(out)
            writer.close()
            return
        conn = ClientConnection(self.ctx, reader, writer, next(self._ids) & 0xFFFFFFFF)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            await conn.run()
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
