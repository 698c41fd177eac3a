"""The backend side: one MariaDB/MySQL connection per client session.

aiomysql opens the connection (TCP or socket, TLS, every auth plugin the server may ask
for). After that the proxy speaks the command phase itself through the same sans-I/O
framing as the client side, so result packets are forwarded without being decoded and
re-encoded, and column metadata reaches the client exactly as the backend sent it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import aiomysql
import pymysql
from pymysql.charset import charset_by_id

from proxy.protocol.codec import is_eof, parse_err, parse_text_row, read_lenenc_int
from proxy.protocol.errors import BackendError, BackendUnavailable
from proxy.protocol.framing import MAX_PACKET, FramingError, PacketReader, frame

log = logging.getLogger(__name__)

COM_QUIT = 0x01
COM_INIT_DB = 0x02
COM_QUERY = 0x03
COM_PING = 0x0E
COM_SET_OPTION = 0x1B
COM_RESET_CONNECTION = 0x1F
MULTI_STATEMENTS_ON, MULTI_STATEMENTS_OFF = 0, 1

# Client capability bits that change what the server does, so the backend connection must
# carry the client's choice: FOUND_ROWS (affected rows = matched rows), IGNORE_SPACE (parser),
# INTERACTIVE (wait_timeout).
MIRRORED_FLAGS = 0x0002 | 0x0100 | 0x0400


@dataclass(frozen=True, slots=True, kw_only=True)
class BackendAddress:
    host: str = "127.0.0.1"
    port: int = 3306
    unix_socket: str | None = None
    connect_timeout: float = 10.0


class Backend:
    """A connected backend session speaking raw command packets."""

    def __init__(self, conn: aiomysql.Connection) -> None:
        self._conn = conn
        self._reader: asyncio.StreamReader = conn._reader
        self._writer: asyncio.StreamWriter = conn._writer
        self._packets = PacketReader(max_packet=1 << 30)  # trust the server up to its own cap
        self._deferred: list[bytes] = []  # commands to send ahead of the next one (defer())
        self._owed = 0  # replies to deferred commands not read yet
        self.server_version: str = conn.get_server_info()
        self.thread_id: int = conn.server_thread_id[0]

    @classmethod
    async def connect(
        cls,
        address: BackendAddress,
        *,
        user: str,
        password: str,
        database: str | None,
        collation: int,
        client_flags: int,
        multi_statements: bool,
    ) -> Backend:
        try:
            charset = charset_by_id(collation)
            charset_name = charset.name
            # The backend picks its default collation for the charset; ask for the
            # client's own when it differs (string comparisons depend on it).
            set_collation = None if charset.is_default else charset.collation
        except KeyError:
            charset_name, set_collation = "utf8mb4", None
        try:
            conn = await aiomysql.connect(
                host=address.host,
                port=address.port,
                unix_socket=address.unix_socket,
                user=user,
                password=password,
                db=database,
                charset=charset_name,
                client_flag=client_flags & MIRRORED_FLAGS,
                autocommit=None,  # keep the server's default, as a direct client would
                connect_timeout=address.connect_timeout,
                local_infile=False,
                program_name="cryptdb-proxy",
            )
        except pymysql.err.MySQLError as e:
            code, message = (e.args + (None, ""))[:2]
            if isinstance(code, int) and code < 2000:  # a server error, e.g. 1045, 1049
                raise BackendError(code, getattr(e, "sqlstate", None) or "HY000", message) from None
            raise BackendUnavailable() from None
        except (TimeoutError, OSError):
            raise BackendUnavailable() from None
        backend = cls(conn)
        # aiomysql always asks for multi-statements; give the backend session the client's
        # choice, so "a; b" fails exactly as it would on a direct connection.
        if not multi_statements:
            await backend.simple_command(COM_SET_OPTION, MULTI_STATEMENTS_OFF.to_bytes(2, "little"))
        if set_collation:
            # An unknown collation (e.g. MySQL 8's utf8mb4_0900_ai_ci on MariaDB 10.11)
            # leaves the charset's default, as MariaDB itself does for such clients.
            with contextlib.suppress(BackendError):
                await backend.simple_command(
                    COM_QUERY, f"SET NAMES {charset_name} COLLATE {set_collation}".encode()
                )
        return backend

    def send(self, *payloads: bytes) -> None:
        """Send command packets in one write (sequence ids restart with each command).

        Several commands are pipelined: the server answers them in order, one reply after
        the other; call `next_reply()` before reading each reply after the first. One write
        instead of one per command saves a round trip (and a send syscall, the proxy's
        largest single cost) whenever the later commands do not depend on the replies."""
        out = bytearray()
        if self._deferred:
            payloads = (*self._deferred, *payloads)
            self._owed += len(self._deferred)
            self._deferred.clear()
        for payload in payloads:
            frame(payload, 0, out)
        self._packets.expected_seq = PacketReader.ANY_SEQ
        self._writer.write(out)

    def defer(self, payload: bytes) -> None:
        """Send a command answered by one OK packet (BEGIN) ahead of the next `send`, in the
        same write: one round trip less. Its reply is read before the next command's; an ERR
        there raises BackendError once the next command's reply is drained, as if that
        command had failed. For commands that only read (a lock, a SELECT ... FOR UPDATE):
        run without the deferred BEGIN they have no effect worth undoing."""
        self._deferred.append(payload)

    def next_reply(self) -> None:
        """The next packet begins the reply to the next pipelined command."""
        self._packets.expected_seq = PacketReader.ANY_SEQ

    async def read(self) -> bytes:
        """The next response packet payload."""
        if self._owed:
            await self._settle_deferred()
        return await self._read_packet()

    async def _settle_deferred(self) -> None:
        error = None
        while self._owed:
            self._owed -= 1
            reply = await self._read_packet()
            self.next_reply()
            if reply[:1] != b"\x00" and error is None:
                error = reply
        if error is not None:
            await self._drain_reply()
            if error[:1] == b"\xff":
                raise BackendError(*parse_err(error))
            self.abort()
            raise BackendUnavailable("backend sent an unexpected reply to BEGIN")

    async def _drain_reply(self) -> None:
        """Skip one whole reply: an OK / ERR, or a result set."""
        first = await self._read_packet()
        if first[0] in (0x00, 0xFF):
            return
        for _ in range(2):  # definitions up to their EOF, then rows up to theirs (or an ERR)
            while not is_eof(pkt := await self._read_packet()) and pkt[0] != 0xFF:
                pass
            if pkt[0] == 0xFF:
                return

    async def _read_packet(self) -> bytes:
        packets = self._packets
        while True:
            try:
                pkt = packets.next_packet()
            except FramingError as e:
                self.abort()
                raise BackendUnavailable(f"backend protocol error: {e}") from None
            if pkt is not None:
                return pkt
            try:
                data = await self._reader.read(1 << 16)
            except OSError:
                data = b""
            if not data:
                self.abort()
                raise BackendUnavailable("lost connection to the backend server")
            packets.feed(data)

    def next_buffered(self) -> bytes | None:
        """A packet already received, without waiting (lets callers batch row forwarding)."""
        if self._owed:
            return None  # the deferred replies come first: read() settles them
        try:
            return self._packets.next_packet()
        except FramingError as e:
            self.abort()
            raise BackendUnavailable(f"backend protocol error: {e}") from None

    def forward(self, out: bytearray, seq: int, limit: int = 1 << 30) -> tuple[int, int]:
        """Result packets already received, moved verbatim to `out` (PacketReader.forward)."""
        if self._owed:
            return seq, 0
        try:
            return self._packets.forward(out, seq, limit)
        except FramingError as e:
            self.abort()
            raise BackendUnavailable(f"backend protocol error: {e}") from None

    async def simple_command(self, command: int, arg: bytes = b"") -> bytes:
        """A command answered by one OK/EOF packet; a backend ERR raises BackendError."""
        self.send(bytes((command,)) + arg)
        pkt = await self.read()
        if pkt[:1] == b"\xff":
            raise BackendError(*parse_err(pkt))
        return pkt

    async def query_row(self, sql: bytes) -> list[bytes | None]:
        """The first row of a small query's result (BackendError on an ERR)."""
        rows = await self.query_rows(sql)
        if not rows:
            raise BackendError(1105, "HY000", "empty result")
        return rows[0]

    async def query_rows(self, sql: bytes) -> list[list[bytes | None]]:
        """Every row of a small query's result (BackendError on an ERR)."""
        self.send(bytes((COM_QUERY,)) + sql)
        return await self.read_rows()

    async def read_rows(self) -> list[list[bytes | None]]:
        """The rows of the reply being read (BackendError on an ERR: the reply is over)."""
        first = await self.read()
        if first[0] == 0xFF:
            raise BackendError(*parse_err(first))
        count, _ = read_lenenc_int(first, 0)
        for _ in range((count or 0) + 1):  # definitions, then their EOF
            await self.read()
        rows = []
        while not is_eof(pkt := await self.read()):
            if pkt[0] == 0xFF:
                raise BackendError(*parse_err(pkt))
            rows.append(parse_text_row(pkt, count or 0))
        return rows

    async def reset(self) -> None:
        """COM_RESET_CONNECTION: the backend drops temporary tables, user variables,
        prepared statements and rolls back, keeping the login."""
        await self.simple_command(COM_RESET_CONNECTION)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.transport.abort()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.send(bytes((COM_QUIT,)))
            await self._writer.drain()
        self.abort()


__all__ = ["Backend", "BackendAddress", "MAX_PACKET"]
