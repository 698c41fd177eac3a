"""Relaying a backend response to the client, packet by packet.

The backend connection never sets CLIENT_DEPRECATE_EOF, so its responses have the classic
shape (column count, definitions, EOF, rows, EOF). Everything is forwarded as received
except the EOF packets, which are rewritten for clients that asked for the OK form.
"""

from __future__ import annotations

from mysql_mimic.types import Capabilities

from proxy.backend import Backend
from proxy.protocol.codec import end_of_rows, is_eof, parse_eof, parse_ok, read_lenenc_int
from proxy.protocol.errors import BackendUnavailable
from proxy.stream import PacketStream

SERVER_MORE_RESULTS_EXISTS = 0x0008


async def relay_response(backend: Backend, client: PacketStream, capabilities: int) -> int | None:
    """Forward every result of one command (several with multi-statements); return the
    last status flags the backend reported, or None when it ended with an ERR (which
    carries no flags)."""
    deprecate_eof = bool(capabilities & Capabilities.CLIENT_DEPRECATE_EOF)
    while True:
        first = await backend.read()
        head = first[0]
        if head == 0x00:
            client.write(first)
            status = parse_ok(first).status
        elif head == 0xFF:
            client.write(first)
            return None
        elif head == 0xFB:
            backend.abort()  # LOCAL INFILE was never negotiated: a backend bug
            raise BackendUnavailable("backend requested a local file")
        else:
            status = await _relay_result_set(backend, client, first, deprecate_eof, capabilities)
        if status is None or not status & SERVER_MORE_RESULTS_EXISTS:
            return status
        await client.maybe_flush()


async def _relay_result_set(
    backend: Backend, client: PacketStream, first: bytes, deprecate_eof: bool, capabilities: int
) -> int | None:
    count, _ = read_lenenc_int(first, 0)
    client.write(first)
    # A PacketStream takes the packets as received (PacketStream.relay); other clients
    # (prepared statements' BinaryResults, which convert rows) get them one by one.
    relay = getattr(client, "relay", None)
    remaining = count or 0
    while remaining:
        moved = relay(backend.forward, remaining) if relay is not None else 0
        if not moved:  # not received yet (or not a plain packet): the framed path
            client.write(await backend.read())
            moved = 1
        remaining -= moved
    eof = await backend.read()
    if not is_eof(eof):
        raise BackendUnavailable("backend sent a malformed result set")
    if not deprecate_eof:
        client.write(eof)
    write = client.write
    while True:
        if relay is not None:
            relay(backend.forward, 1 << 30)
            if len(client.out) >= 1 << 18:
                await client.flush()
        pkt = backend.next_buffered() or await backend.read()
        if pkt[0] == 0xFE and len(pkt) < 9:
            warnings, status = parse_eof(pkt)
            client.write(end_of_rows(capabilities, status=status, warnings=warnings))
            return status
        if pkt[0] == 0xFF:  # an error in the middle of the rows (e.g. a killed query)
            write(pkt)
            return None
        write(pkt)
        if len(client.out) >= 1 << 18:
            await client.flush()
