"""Async adapter between a client socket and the sans-I/O packet framing.

TLS runs over memory BIOs instead of `loop.start_tls`: a client sends its TLS ClientHello
right behind the SSLRequest packet, often in the same TCP segment, and bytes already pulled
into a StreamReader's buffer are invisible to `start_tls` (mysql-mimic's 60 s hang). Here
whatever the framer holds beyond the SSLRequest is handed to the TLS engine first.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable

from proxy.protocol.errors import ClientProtocolError
from proxy.protocol.framing import MAX_HANDSHAKE_PACKET, FramingError, PacketReader, frame

READ_SIZE = 1 << 16
# Flush to the socket once this much output is buffered (keeps memory flat on big results).
FLUSH_AT = 1 << 18


class ConnectionClosed(Exception):
    """The client went away."""


class PacketStream:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._packets = PacketReader(max_packet=MAX_HANDSHAKE_PACKET)
        self.out = bytearray()
        self._seq = 0
        self._tls: ssl.SSLObject | None = None
        self._in_bio: ssl.MemoryBIO | None = None
        self._out_bio: ssl.MemoryBIO | None = None

    @property
    def tls(self) -> bool:
        return self._tls is not None

    def set_max_packet(self, size: int) -> None:
        self._packets.max_packet = size

    async def read(self) -> bytes:
        packets = self._packets
        while True:
            try:
                pkt = packets.next_packet()
            except FramingError as e:
                raise ClientProtocolError(str(e)) from None
            if pkt is not None:
                self._seq = packets.expected_seq
                return pkt
            data = await self._recv()
            if not data:
                raise ConnectionClosed()
            packets.feed(data)

    async def _recv(self) -> bytes:
        try:
            if self._tls is None:
                return await self._reader.read(READ_SIZE)
            while True:
                try:
                    return self._tls.read(READ_SIZE)
                except ssl.SSLWantReadError:
                    data = await self._reader.read(READ_SIZE)
                    if not data:
                        return b""
                    assert self._in_bio is not None
                    self._in_bio.write(data)
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    return b""
        except ssl.SSLError as e:
            raise ClientProtocolError(f"TLS error: {e.reason or 'handshake failed'}") from None
        except OSError:
            return b""

    def write(self, payload: bytes) -> None:
        # One sequence counter spans both directions within a command.
        self._seq = self._packets.expected_seq = frame(payload, self._seq, self.out)

    def relay(self, source: Callable[[bytearray, int, int], tuple[int, int]], limit: int) -> int:
        """Up to `limit` packets appended by `source(out, seq, limit)` (Backend.forward) in
        this stream's numbering; how many it moved."""
        seq, moved = source(self.out, self._seq, limit)
        self._seq = self._packets.expected_seq = seq
        return moved

    def reset_seq(self) -> None:
        self._seq = 0
        self._packets.expected_seq = 0

    async def flush(self) -> None:
        # asyncio's drain() does not raise once the peer is gone; without this check a
        # vanished client would have its whole result relayed into the void.
        if self._writer.transport.is_closing():
            raise ConnectionClosed()
        if self.out:
            data, self.out = self.out, bytearray()
            if self._tls is not None:
                self._tls.write(data)
                assert self._out_bio is not None
                data = bytearray(self._out_bio.read())
            self._writer.write(data)
        if self._writer.transport.get_write_buffer_size() == 0:
            return  # the kernel took everything: nothing to wait for (the common case)
        await self._drain()

    async def _drain(self) -> None:
        """Wait for the client to take our output, noticing if it hangs up meanwhile.

        A client that half-closes (FIN) while a large result is in flight would otherwise
        park us in drain() for as long as its socket lingers.
        """
        drain = asyncio.ensure_future(self._writer.drain())
        try:
            while True:
                done, _ = await asyncio.wait({drain}, timeout=1.0)
                if done:
                    drain.result()
                    return
                if self._reader.at_eof() or self._writer.transport.is_closing():
                    raise ConnectionClosed()
        except OSError:
            raise ConnectionClosed() from None
        finally:
            drain.cancel()

    async def maybe_flush(self) -> None:
        if len(self.out) >= FLUSH_AT:
            await self.flush()

    async def start_tls(self, context: ssl.SSLContext) -> None:
        self._in_bio, self._out_bio = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(self._in_bio, self._out_bio, server_side=True)
        self._in_bio.write(self._packets.take_buffered())
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pending = self._out_bio.read()
                if pending:
                    self._writer.write(pending)
                    await self._writer.drain()
                data = await self._reader.read(READ_SIZE)
                if not data:
                    raise ConnectionClosed() from None
                self._in_bio.write(data)
            except ssl.SSLError as e:
                raise ClientProtocolError(f"TLS handshake failed: {e.reason}") from None
        pending = self._out_bio.read()
        if pending:
            self._writer.write(pending)
            await self._writer.drain()
        self._tls = tls

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.transport.abort() if self._writer.transport else None
