"""One client session: its backend connection, its keys, and what it does per command."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from pymysql.converters import escape_string

from keystore import KeystoreError, MasterKey
from keystore.files import InsecurePermissions
from proxy import execute, subqueries, unions
from proxy.backend import Backend, BackendAddress
from proxy.catalog import Catalog
from proxy.keys import KeyGate, PresentedKey
from proxy.password_change import mentions_password, own_new_password
from proxy.protocol.codec import parse_err
from proxy.protocol.errors import BackendError, MysqlError
from proxy.relay import relay_response
from proxy.rewrite import (
    Derived,
    Evaluate,
    Execute,
    PassThrough,
    PeelFirst,
    Plan,
    ReadModifyWrite,
    SubqueriesFirst,
    UnionOf,
)
from proxy.rewrite.errors import ER_CRYPTDB_SESSION
from proxy.session_state import SCHEMA_CHANGING, WRITING, SessionState, first_word
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
    catalog: Catalog | None = None  # None: no keystore, every statement passes through
    address: BackendAddress = field(default_factory=BackendAddress)
    peer: str = ""
    state: SessionState = field(default_factory=SessionState)

    async def forward(self, client: PacketStream, payload: bytes) -> bool:
        """Send a command to the backend and relay its whole response; False after an ERR."""
        self.backend.send(payload)
        status = await relay_response(self.backend, client, self.capabilities)
        if status is not None:  # an ERR leaves the session's flags as they were
            self.status = status
        return status is not None

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
        if self.catalog is None:
            await self.forward(client, payload)
            return
        await self._encrypted_query(client, payload, self.catalog)

    async def _encrypted_query(self, client: PacketStream, payload: bytes, cat: Catalog) -> None:
        """Plan the statement against the encrypted schema and carry the plan out."""
        try:
            sql, utf8 = payload[1:].decode("utf-8"), True
        except UnicodeDecodeError:
            # Planned only to see what it touches: passed through, or refused.
            sql, utf8 = payload[1:].decode("utf-8", "replace"), False
        state = self.state
        word = first_word(sql)  # the statement's class, once: this is the hot path
        ddl, writes = word in SCHEMA_CHANGING, word in WRITING
        for _ in range(execute.PLAN_ATTEMPTS):
            if ddl:
                async with cat.ddl_lock():
                    plan = self._plan(cat, sql)
                    if isinstance(plan, Execute) and plan.ops:
                        await self._check_session(utf8)
                        if await execute.execute(self, client, plan):
                            self._save(cat, plan.ops)
                            await execute.prepare_layer_rows(self, plan.ops)
                        return
            elif writes:
                # Planned and run with no peel in between: within this proxy by its PeelGate,
                # across proxies by the guards' locks (execute.hold_layers).
                async with cat.peel_gate.write():
                    plan = self._plan(cat, sql)
                    if not isinstance(plan, PeelFirst | PassThrough | SubqueriesFirst) and not (
                        isinstance(plan, Execute) and plan.ops
                    ):
                        if await self._run(client, plan, utf8):
                            return
                        continue  # another proxy peeled since: recorded, plan again
            else:
                plan = self._plan(cat, sql)
            if isinstance(plan, PassThrough):
                token = cat.schema.token
                in_trans = self.status & execute.STATUS_IN_TRANS
                ok = await self.forward(client, payload)
                state.after_pass_through(sql, ok, self.status, in_trans, token, word=word)
                return
            await self._check_session(utf8)
            if isinstance(plan, PeelFirst):
                await execute.run_peels(self, plan)
                continue
            if isinstance(plan, Execute) and plan.ops:
                ddl = True  # a schema change not foreseen by the cheap check: plan it locked
                continue
            if isinstance(plan, SubqueriesFirst):  # inner statements first (proxy.subqueries)
                await subqueries.run(self, client, cat, plan)
                return
            if isinstance(plan, UnionOf | Derived):  # combined / evaluated here (proxy.unions)
                await unions.run(self, client, cat, plan)
                return
            if await self._run(client, plan, utf8):
                return
        raise MysqlError(1105, "HY000", "cryptdb: onion adjustments did not settle; retry")

    async def _run(self, client: PacketStream, plan: Plan, utf8: bool) -> bool:
        """An Execute without schema ops, a ReadModifyWrite or an Evaluate; False (nothing
        sent to the client) when a write's guards found a peel made since it was planned."""
        assert self.catalog is not None
        await self._check_session(utf8)
        token = self.catalog.schema.token
        in_trans = self.status & execute.STATUS_IN_TRANS
        try:
            if isinstance(plan, ReadModifyWrite):
                await execute.read_modify_write(self, client, plan)
            elif isinstance(plan, Execute) and plan.guards:
                await execute.guarded_write(self, client, plan)
            elif isinstance(plan, Evaluate):
                await execute.evaluate(self, client, plan)
            else:
                assert isinstance(plan, Execute)
                await execute.execute(self, client, plan)
        except execute.StaleLayers:
            return False
        self.state.after_statement(self.status, in_trans, token)
        return True

    def _plan(self, cat: Catalog, sql: str, cache: bool = True) -> Plan:
        try:
            schema = cat.current()
        except (KeystoreError, InsecurePermissions) as e:
            # Damaged, replaced or loosened under us: refuse, keep serving, say where to look.
            log.error("keystore %s: %s", cat.keystore.path, type(e).__name__)
            raise execute.cryptdb_error(
                ER_CRYPTDB_SESSION, "the proxy's keystore cannot be read; see its log"
            ) from None
        try:
            return cat.rewriter.plan(
                sql,
                schema=schema,
                crypto=cat.crypto,
                database=self.state.database,
                current_read=self.state.current_read(self.status, schema.token),
                cache=cache,
            )
        except MysqlError:
            raise
        except Exception as e:
            raise execute.internal_error(
                e, "internal error while rewriting the statement; it was not executed"
            ) from None

    async def _check_session(self, utf8: bool) -> None:
        """Encrypted statements assume utf8mb4 text and MariaDB's default literal syntax."""
        if not utf8:
            raise execute.cryptdb_error(
                ER_CRYPTDB_SESSION, "a statement on encrypted tables must be UTF-8 text"
            )
        if self.state.settings_checked:
            return
        reply = await self.backend.query_row(
            b"SELECT @@character_set_client, @@character_set_results, @@sql_mode, @@tx_isolation"
        )
        self.state.check_settings(reply)

    def _save(self, cat: Catalog, ops: list[dict[str, Any]]) -> None:
        try:
            cat.apply(ops)
        except Exception as e:
            # The backend ran the DDL but the keystore did not take it (e.g. a full disk).
            log.error("schema change not recorded: %s", type(e).__name__)
            raise execute.cryptdb_error(
                ER_CRYPTDB_SESSION,
                "the schema change ran on the backend but could not be recorded in the "
                "keystore; see the proxy log",
            ) from None

    async def init_db(self, client: PacketStream, payload: bytes) -> None:
        if await self.forward(client, payload):
            self.state.database = payload[1:].decode("utf-8", "replace")

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

