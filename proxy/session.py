"""One client session: its backend connection, its keys, and what it does per command."""

from __future__ import annotations

from dataclasses import dataclass, field

from proxy.backend import Backend
from proxy.relay import relay_response
from proxy.stream import PacketStream


@dataclass(repr=False)
class Session:
    backend: Backend
    username: str
    capabilities: int
    # Key material from the handshake (HR42 fields or connection attributes), consumed by the
    # keystore; never logged (repr is disabled).
    cryptdb_key: bytes | None = None
    old_cryptdb_key: bytes | None = None
    connect_attrs: dict[str, str] = field(default_factory=dict)
    status: int = 0x0002  # SERVER_STATUS_AUTOCOMMIT until the backend says otherwise

    async def forward(self, client: PacketStream, payload: bytes) -> None:
        """Send a command to the backend and relay its whole response."""
        self.backend.send(payload)
        self.status = await relay_response(self.backend, client, self.capabilities)

    async def query(self, client: PacketStream, payload: bytes) -> None:
        await self.forward(client, payload)

    async def close(self) -> None:
        await self.backend.close()
