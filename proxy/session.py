"""One client session: its backend connection, its keys, and what it does per command."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from pymysql.converters import escape_string

from keystore import MasterKey
from proxy.backend import Backend
from proxy.keys import KeyGate, PresentedKey
from proxy.password_change import mentions_password, own_new_password
from proxy.protocol.codec import parse_err
from proxy.protocol.errors import BackendError
from proxy.relay import relay_response
from proxy.stream import PacketStream

log = logging.getLogger(__name__)
COM_QUERY = 0x03


@dataclass(repr=False)
class Session:
    backend: Backend
    username: str
    capabilities: int
    # The login password and the presented key stay in memory only, as the master key
    # they open does; nothing here is logged (repr is disabled).
    password: bytes = b""
    presented: PresentedKey | None = None
    master_key: MasterKey | None = None
    keys: KeyGate | None = None
    connect_attrs: dict[str, str] = field(default_factory=dict)
    status: int = 0x0002  # SERVER_STATUS_AUTOCOMMIT until the backend says otherwise

    async def forward(self, client: PacketStream, payload: bytes) -> None:
        """Send a command to the backend and relay its whole response."""
        self.backend.send(payload)
        self.status = await relay_response(self.backend, client, self.capabilities)

    async def query(self, client: PacketStream, payload: bytes) -> None:
        if (
            self.keys is not None
            and self.presented is not None
            and self.presented.from_password
            and mentions_password(payload)
        ):
            new = own_new_password(payload[1:].decode("utf-8", "replace"), self.username)
            if new is not None:
                await self._change_password(client, payload, new.encode())
                return
        await self.forward(client, payload)

    async def _change_password(self, client: PacketStream, payload: bytes, new: bytes) -> None:
        """Change the backend password and re-wrap the keystore slot: both or neither."""
        assert self.keys is not None
        loop = asyncio.get_running_loop()
        replies: list[bytes] = []

        def change_backend() -> None:  # runs in the keystore's thread, under its lock
            reply = asyncio.run_coroutine_threadsafe(self._backend_reply(payload), loop).result()
            replies.append(reply)
            if reply[:1] == b"\xff":
                raise BackendError(*parse_err(reply))

        try:
            await self.keys.rotate(self.username, self.password, new, change_backend)
        except BackendError:
            client.write(replies[-1])  # the backend refused: nothing changed anywhere
            return
        except Exception:
            # The backend changed but the slot did not (e.g. a full disk): undo the backend.
            if replies and replies[-1][:1] != b"\xff":
                await self._revert_backend_password()
            raise
        self.password = new
        self.presented = PresentedKey(new, None, True)
        log.info("password and keystore slot changed together for %r", self.username)
        client.write(replies[-1])

    async def _backend_reply(self, payload: bytes) -> bytes:
        self.backend.send(payload)
        return await self.backend.read()

    async def _revert_backend_password(self) -> None:
        old = escape_string(self.password.decode("latin-1"))
        sql = f"SET PASSWORD = PASSWORD('{old}')"
        reply = await self._backend_reply(bytes((COM_QUERY,)) + sql.encode("latin-1"))
        if reply[:1] == b"\xff":
            log.error("could not restore the backend password of %r", self.username)

    async def close(self) -> None:
        await self.backend.close()

