"""One client connection: handshake, authentication, then the command loop.

Command handling is a table from command byte to handler; anything not in it is refused
with ER_UNKNOWN_COM_ERROR, as MariaDB does.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mysql_mimic.types import Capabilities

from keystore import KeystoreError
from keystore.files import InsecurePermissions
from proxy import auth
from proxy.backend import Backend, BackendAddress
from proxy.keys import KeyGate, choose_key
from proxy.prepared import BinaryResults, Statements
from proxy.protocol import errors
from proxy.protocol.binary import (
    BinaryProtocolError,
    make_prepare_ok,
    param_definition,
    parse_execute,
)
from proxy.protocol.codec import end_of_rows, is_eof, make_err, make_ok, parse_eof
from proxy.protocol.errors import BackendError, BackendUnavailable, ClientProtocolError, MysqlError
from proxy.protocol.framing import MAX_PACKET
from proxy.protocol.handshake import (
    HandshakeError,
    HandshakeResponse42,
    SSLRequest,
    make_handshake_v10,
    parse_handshake_response,
)
from proxy.rewrite.decode import column_out
from proxy.session import Session
from proxy.stream import ConnectionClosed, PacketStream

log = logging.getLogger(__name__)

C = Capabilities
SERVER_CAPABILITIES = (
    C.CLIENT_LONG_PASSWORD
    | C.CLIENT_FOUND_ROWS
    | C.CLIENT_LONG_FLAG
    | C.CLIENT_CONNECT_WITH_DB
    | C.CLIENT_ODBC
    | C.CLIENT_IGNORE_SPACE
    | C.CLIENT_PROTOCOL_41
    | C.CLIENT_INTERACTIVE
    | C.CLIENT_IGNORE_SIGPIPE
    | C.CLIENT_TRANSACTIONS
    | C.CLIENT_SECURE_CONNECTION
    | C.CLIENT_MULTI_STATEMENTS
    | C.CLIENT_MULTI_RESULTS
    | C.CLIENT_PS_MULTI_RESULTS
    | C.CLIENT_PLUGIN_AUTH
    | C.CLIENT_CONNECT_ATTRS
    | C.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    | C.CLIENT_DEPRECATE_EOF
)
UTF8MB4_GENERAL_CI = 45
STATUS_AUTOCOMMIT = 0x0002

COM_QUIT, COM_INIT_DB, COM_QUERY, COM_FIELD_LIST = 0x01, 0x02, 0x03, 0x04
COM_STATISTICS, COM_PING, COM_SET_OPTION, COM_RESET_CONNECTION = 0x09, 0x0E, 0x1B, 0x1F
COM_STMT_PREPARE, COM_STMT_EXECUTE, COM_STMT_SEND_LONG_DATA = 0x16, 0x17, 0x18
COM_STMT_CLOSE, COM_STMT_RESET, COM_STMT_FETCH = 0x19, 0x1A, 0x1C
ER_WRONG_ARGUMENTS = (1210, "HY000")


@dataclass(frozen=True, kw_only=True)
class ServerContext:
    """What every connection shares: configuration and process-wide keys."""

    backend: BackendAddress
    server_version: str
    rsa: auth.RsaKeyPair
    tls: ssl.SSLContext | None
    handshake_timeout: float
    keys: KeyGate | None = None  # None: no keystore configured (pass-through only)


class ClientConnection:
    def __init__(
        self,
        ctx: ServerContext,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        connection_id: int,
    ) -> None:
        self.ctx = ctx
        self.stream = PacketStream(reader, writer)
        self.connection_id = connection_id
        self.capabilities = 0
        self.session: Session | None = None
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "local"
        self._handlers: dict[int, Callable[[bytes], Awaitable[bool]]] = {
            COM_QUERY: self._query,
            COM_INIT_DB: self._init_db,
            COM_FIELD_LIST: self._field_list,
            COM_STATISTICS: self._statistics,
            COM_PING: self._forward,
            COM_SET_OPTION: self._set_option,
            COM_RESET_CONNECTION: self._reset_connection,
            COM_STMT_PREPARE: self._stmt_prepare,
            COM_STMT_EXECUTE: self._stmt_execute,
            COM_STMT_RESET: self._stmt_reset,
            COM_STMT_FETCH: self._stmt_fetch,
            COM_QUIT: self._quit,
        }
        # Commands the server answers with nothing at all: answering would desynchronize.
        self._silent: dict[int, Callable[[bytes], None]] = {
            COM_STMT_SEND_LONG_DATA: self._stmt_long_data,
            COM_STMT_CLOSE: self._stmt_close,
        }
        self.statements = Statements()

    async def run(self) -> None:
        try:
            async with asyncio.timeout(self.ctx.handshake_timeout):
                self.session = await self._handshake()
            if self.session is not None:
                await self._command_loop()
        except (ConnectionClosed, ConnectionError):
            pass
        except TimeoutError:
            log.info("connection %d: handshake timed out", self.connection_id)
        except ClientProtocolError as e:
            log.info("connection %d: protocol error: %s", self.connection_id, e.message)
            await self._send_error(e)
        except BackendUnavailable as e:
            log.warning("connection %d: %s", self.connection_id, e.message)
            await self._send_error(e)
        except Exception as e:
            # Type and stack only: an exception's message may quote SQL text or values.
            log.error(
                "connection %d: internal error %s\n%s",
                self.connection_id,
                type(e).__name__,
                "".join(traceback.format_tb(e.__traceback__)),
            )
            await self._send_error(MysqlError(*errors.ER_UNKNOWN_ERROR, "internal proxy error"))
        finally:
            if self.session is not None:
                await self.session.close()
            self.stream.close()

    async def _send_error(self, e: MysqlError) -> None:
        try:
            self.stream.write(make_err(e.code, e.sqlstate, e.message))
            await self.stream.flush()
        except Exception:  # noqa: S110 - the client is gone; nothing more to tell it
            pass

    # -- connection phase -------------------------------------------------------------

    async def _handshake(self) -> Session | None:
        stream = self.stream
        caps = SERVER_CAPABILITIES | (C.CLIENT_SSL if self.ctx.tls else 0)
        nonce = auth.make_nonce()
        stream.write(
            make_handshake_v10(
                server_version=self.ctx.server_version,
                connection_id=self.connection_id,
                nonce=nonce,
                capabilities=caps,
                collation=UTF8MB4_GENERAL_CI,
                status=STATUS_AUTOCOMMIT,
                auth_plugin=auth.CACHING_SHA2,
            )
        )
        await stream.flush()
        response = self._parse(caps, await stream.read())
        if isinstance(response, SSLRequest):
            if self.ctx.tls is None:
                raise ClientProtocolError("TLS requested but not offered")
            await stream.start_tls(self.ctx.tls)
            response = self._parse(caps, await stream.read())
            if isinstance(response, SSLRequest):
                raise ClientProtocolError("a second SSLRequest")
        self.capabilities = response.capabilities
        password = await self._password(response, nonce)
        if password is None:
            return None
        try:
            backend = await Backend.connect(
                self.ctx.backend,
                user=response.username,
                # aiomysql encodes passwords as latin-1: this hands over the exact bytes.
                password=password.decode("latin-1"),
                database=response.database,
                collation=response.collation,
                client_flags=response.capabilities,
                multi_statements=bool(response.capabilities & C.CLIENT_MULTI_STATEMENTS),
            )
        except BackendError as e:
            # A refused login (1045), an unknown database (1049)...: the backend's own words.
            stream.write(make_err(e.code, e.sqlstate, e.message))
            await stream.flush()
            return None
        attrs = response.connect_attrs
        presented = choose_key(response.cryptdb_key, response.old_cryptdb_key, attrs, password)
        master = catalog = None
        if self.ctx.keys is not None:
            # After the backend login, so only a real account can initialize a deployment.
            try:
                master = await self.ctx.keys.open(response.username, presented)
                catalog = await self.ctx.keys.catalog(master)
            except MysqlError as e:
                await backend.close()
                stream.write(make_err(e.code, e.sqlstate, e.message))
                await stream.flush()
                return None
        session = Session(
            backend=backend,
            username=response.username,
            capabilities=response.capabilities,
            password=password,
            presented=presented,
            master_key=master,
            keys=self.ctx.keys,
            connect_attrs={k: v for k, v in attrs.items() if "cryptdb" not in k},
            catalog=catalog,
            address=self.ctx.backend,
            peer=self.peer,
        )
        session.state.database = response.database
        stream.write(make_ok(status=STATUS_AUTOCOMMIT))
        await stream.flush()
        stream.set_max_packet(MAX_PACKET)
        log.info("connection %d: %s from %s", self.connection_id, response.username, self.peer)
        return session

    @staticmethod
    def _parse(caps: int, data: bytes) -> SSLRequest | HandshakeResponse42:
        try:
            return parse_handshake_response(caps, data)
        except HandshakeError as e:
            raise ClientProtocolError(str(e)) from None

    async def _password(self, response: HandshakeResponse42, nonce: bytes) -> bytes | None:
        """Run the auth exchange until the client has revealed its password."""
        stream = self.stream
        data = response.auth_response
        if response.client_plugin == auth.CLEAR_PASSWORD:
            return auth.cleartext_from_packet(data)
        if response.client_plugin != auth.CACHING_SHA2:
            # Any other plugin (mysql_native_password, ed25519...): switch to ours.
            stream.write(b"\xfe" + auth.CACHING_SHA2.encode() + b"\x00" + nonce + b"\x00")
            await stream.flush()
            data = await stream.read()
        if not data:
            return b""  # an empty password: caching_sha2 sends an empty scramble
        stream.write(b"\x01" + auth.PERFORM_FULL_AUTH)
        await stream.flush()
        data = await stream.read()
        if stream.tls:
            return auth.cleartext_from_packet(data)
        if len(data) == self.ctx.rsa.ciphertext_length:
            # A client that already holds our public key (PyMySQL on reconnect) sends the
            # encrypted password straight away.
            try:
                return self.ctx.rsa.decrypt_password(data, nonce)
            except ValueError:
                pass
        if data != auth.REQUEST_PUBLIC_KEY:
            # mysql-connector's pure-Python driver answers a full-auth request with the
            # cleartext password even without TLS. It is already on the wire; refusing would
            # only break the client. Say so (without the password), and recommend TLS.
            log.warning(
                "connection %d: client sent its password unencrypted (no TLS); enable TLS",
                self.connection_id,
            )
            return auth.cleartext_from_packet(data)
        stream.write(b"\x01" + self.ctx.rsa.public_pem)
        await stream.flush()
        encrypted = await stream.read()
        try:
            return self.ctx.rsa.decrypt_password(encrypted, nonce)
        except ValueError:
            await self._deny(response.username)
            return None

    async def _deny(self, username: str) -> None:
        self.stream.write(
            make_err(*errors.ER_ACCESS_DENIED, f"Access denied for user '{username}'")
        )
        await self.stream.flush()

    # -- command phase ----------------------------------------------------------------

    async def _command_loop(self) -> None:
        stream = self.stream
        while True:
            stream.reset_seq()
            payload = await stream.read()
            if not payload:
                raise ClientProtocolError("empty command packet")
            command = payload[0]
            silent = self._silent.get(command)
            if silent is not None:
                silent(payload)
                continue
            handler = self._handlers.get(command)
            try:
                if handler is None:
                    raise MysqlError(*errors.ER_UNKNOWN_COM, "Unknown command")
                if not await handler(payload):
                    return
            except BackendUnavailable:
                raise
            except ClientProtocolError:
                raise
            except MysqlError as e:
                stream.write(make_err(e.code, e.sqlstate, e.message))
            await stream.flush()

    @property
    def _session(self) -> Session:
        assert self.session is not None
        return self.session

    async def _query(self, payload: bytes) -> bool:
        await self._session.query(self.stream, payload)
        return True

    async def _init_db(self, payload: bytes) -> bool:
        await self._session.init_db(self.stream, payload)
        return True

    async def _forward(self, payload: bytes) -> bool:
        await self._session.forward(self.stream, payload)
        return True

    async def _set_option(self, payload: bytes) -> bool:
        """COM_SET_OPTION (multi-statements on/off) answers with an EOF packet."""
        backend = self._session.backend
        backend.send(payload)
        reply = await backend.read()
        if is_eof(reply):
            warnings, status = parse_eof(reply)
            reply = end_of_rows(self.capabilities, status=status, warnings=warnings)
        self.stream.write(reply)
        return True

    async def _field_list(self, payload: bytes) -> bool:
        """COM_FIELD_LIST (the mariadb CLI's auto-rehash): definitions, then EOF."""
        if self._encrypted_field_list(payload):
            return True
        backend = self._session.backend
        backend.send(payload)
        while True:
            pkt = await backend.read()
            if pkt[0] == 0xFF:
                self.stream.write(pkt)
                return True
            if is_eof(pkt):
                warnings, status = parse_eof(pkt)
                self.stream.write(end_of_rows(self.capabilities, status=status, warnings=warnings))
                return True
            self.stream.write(pkt)

    def _encrypted_field_list(self, payload: bytes) -> bool:
        """An encrypted table's plaintext columns, from the schema (the backend only knows
        `t_<id>`); False for any other table."""
        session = self._session
        if session.catalog is None:
            return False
        name = payload[1:].split(b"\0", 1)[0].decode("utf-8", "replace")
        database = session.state.database
        try:
            table = session.catalog.current().table(database, name)
        except (KeystoreError, InsecurePermissions):  # unreadable: the backend answers
            return False
        if table is None:
            return False
        for col in table.columns:
            out = column_out(col, col.name, table.name, table)
            # COM_FIELD_LIST definitions end with the column's default: not shown (NULL).
            self.stream.write(out.definition(database or "").encode() + b"\xfb")
        self.stream.write(end_of_rows(self.capabilities, status=session.status, warnings=0))
        return True

    async def _statistics(self, payload: bytes) -> bool:
        backend = self._session.backend
        backend.send(payload)
        self.stream.write(await backend.read())
        return True

    async def _reset_connection(self, payload: bytes) -> bool:
        await self._session.backend.reset()
        self._session.state.reset()
        self.statements.clear()
        self.stream.write(make_ok(status=STATUS_AUTOCOMMIT))
        return True

    # -- prepared statements (emulated: proxy.prepared) -----------------------------------

    async def _stmt_prepare(self, payload: bytes) -> bool:
        stmt_id, p = self.statements.prepare(payload[1:])
        params = len(p.slots)
        # The result's columns are known only once it runs: announced as none, sent with
        # each execution's result set, as for a statement whose metadata changed.
        self.stream.write(make_prepare_ok(stmt_id, 0, params))
        if params:
            for _ in range(params):
                self.stream.write(param_definition())
            if not self.capabilities & C.CLIENT_DEPRECATE_EOF:
                self.stream.write(
                    end_of_rows(self.capabilities, status=self._session.status, warnings=0)
                )
        return True

    async def _stmt_execute(self, payload: bytes) -> bool:
        if len(payload) < 10:
            raise MysqlError(*ER_WRONG_ARGUMENTS, "Incorrect arguments to mysqld_stmt_execute")
        p = self.statements.get(int.from_bytes(payload[1:5], "little"), "mysqld_stmt_execute")
        try:
            ex = parse_execute(payload, len(p.slots), p.types, p.long_data)
        except BinaryProtocolError:
            raise MysqlError(
                *ER_WRONG_ARGUMENTS, "Incorrect arguments to mysqld_stmt_execute"
            ) from None
        finally:
            p.long_data.clear()
        query = bytes((COM_QUERY,)) + p.bind(ex.values)
        results = BinaryResults(self.stream, bool(self.capabilities & C.CLIENT_DEPRECATE_EOF))
        await self._session.query(results, query)  # type: ignore[arg-type]
        return True

    def _stmt_long_data(self, payload: bytes) -> None:
        if len(payload) < 7:
            return
        p = self.statements.find(int.from_bytes(payload[1:5], "little"))
        if p is not None:
            param = int.from_bytes(payload[5:7], "little")
            p.long_data[param] = p.long_data.get(param, b"") + payload[7:]

    def _stmt_close(self, payload: bytes) -> None:
        self.statements.close(int.from_bytes(payload[1:5], "little"))

    async def _stmt_reset(self, payload: bytes) -> bool:
        p = self.statements.get(int.from_bytes(payload[1:5], "little"), "mysqld_stmt_reset")
        p.long_data.clear()
        self.stream.write(make_ok(status=self._session.status))
        return True

    async def _stmt_fetch(self, payload: bytes) -> bool:
        raise MysqlError(
            *errors.ER_NOT_SUPPORTED_YET,
            "cursors on prepared statements are not supported by the proxy",
        )

    async def _quit(self, payload: bytes) -> bool:
        return False
