"""Carrying out rewrite plans (proxy.rewrite.plan) on a session's backend connection.

    PassThrough        the client's bytes go to the backend, the reply comes back verbatim
    Execute            the rewritten statement runs; a result set is read whole, decrypted
                       by the plan's decoder and sent with the plaintext column metadata
    PeelFirst          each peel runs once on a connection of its own, is recorded in the
                       keystore metadata and the audit log; then the statement is planned again
    ReadModifyWrite    SELECT ... FOR UPDATE, compute, UPDATE, in one transaction
    Evaluate           information_schema rows fetched, the query answered in the proxy

Nothing here sends an encrypted column's plaintext to the backend or the backend's
ciphertext to the client: a decryption failure becomes an ERR packet.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiomysql
import pymysql
from mysql_mimic.types import Capabilities

from keystore import KeystoreError
from keystore.files import InsecurePermissions
from onion import InvalidCiphertext
from proxy.catalog import PeelBusy
from proxy.protocol.codec import (
    ColumnDefinition,
    end_of_rows,
    is_eof,
    lenenc_int,
    make_eof,
    make_ok,
    parse_eof,
    parse_ok,
    parse_text_row,
    read_lenenc_int,
)
from proxy.protocol.errors import BackendUnavailable, MysqlError
from proxy.relay import relay_response
from proxy.rewrite import Decoder, Evaluate, Execute, Peel, PeelFirst, Plan, ReadModifyWrite
from proxy.rewrite.errors import ER_CRYPTDB_DECRYPT, ER_CRYPTDB_SESSION
from proxy.stream import PacketStream

if TYPE_CHECKING:
    from proxy.session import Session

log = logging.getLogger(__name__)

COM_QUERY = 0x03
STATUS_IN_TRANS = 0x0001
STATUS_AUTOCOMMIT = 0x0002
PLAN_ATTEMPTS = 4
PEEL_LOCK_WAIT = 2  # seconds: a peel waiting on the client's own open transaction gives up
ER_LOCK_WAIT_TIMEOUT = 1205
ER_SP_DOES_NOT_EXIST = 1305


__all__ = ["Plan", "evaluate", "execute", "read_modify_write", "run_peels"]


def cryptdb_error(code: int, message: str) -> MysqlError:
    return MysqlError(code, "HY000", f"cryptdb: {message}")


# ---- results --------------------------------------------------------------------------------


class ResultSet:
    """A backend result set read whole: the raw rows and the final EOF's flags."""

    def __init__(
        self,
        rows: list[list[bytes | None]],
        status: int,
        warnings: int,
        definitions: list[bytes] | None = None,
    ) -> None:
        self.rows = rows
        self.status = status
        self.warnings = warnings
        self.definitions = definitions or []  # raw packets (Evaluate reads them)


async def read_result(session: Session, client: PacketStream, sql: str) -> ResultSet | None:
    """Run `sql`; the rows of its result set, or None after relaying an OK/ERR reply."""
    backend = session.backend
    backend.send(bytes((COM_QUERY,)) + sql.encode("utf-8"))
    first = await backend.read()
    if first[0] == 0xFF:
        client.write(first)
        return None
    if first[0] == 0x00:  # no result set (not expected from a planned SELECT)
        client.write(first)
        session.status = parse_ok(first).status
        return None
    count, _ = read_lenenc_int(first, 0)
    count = count or 0
    # The backend's definitions name ciphertext columns: never sent on (Evaluate reads them).
    definitions = [await backend.read() for _ in range(count)]
    if not is_eof(await backend.read()):
        raise BackendUnavailable("backend sent a malformed result set")
    rows: list[list[bytes | None]] = []
    while True:
        pkt = backend.next_buffered() or await backend.read()
        if pkt[0] == 0xFE and len(pkt) < 9:
            warnings, status = parse_eof(pkt)
            return ResultSet(rows, status, warnings, definitions)
        if pkt[0] == 0xFF:
            client.write(pkt)
            return None
        rows.append(parse_text_row(pkt, count))


def decode(decoder: Decoder, rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    try:
        return decoder.decode(rows)
    except InvalidCiphertext:
        # No detail: which value failed says something about the data.
        raise cryptdb_error(
            ER_CRYPTDB_DECRYPT, "a stored value did not decrypt (wrong keystore or damaged data)"
        ) from None


async def send_result(
    client: PacketStream,
    capabilities: int,
    decoder: Decoder,
    values: list[tuple[Any, ...]],
    *,
    status: int,
    warnings: int = 0,
) -> None:
    definitions = decoder.definitions()
    write = client.write
    write(lenenc_int(len(definitions)))
    for d in definitions:
        write(d.encode())
    if not capabilities & Capabilities.CLIENT_DEPRECATE_EOF:
        write(make_eof(status=status, warnings=warnings))
    text_row = decoder.text_row
    for v in values:
        write(text_row(v))
        if len(client.out) >= 1 << 18:
            await client.flush()
    write(end_of_rows(capabilities, status=status, warnings=warnings))


# ---- plans ----------------------------------------------------------------------------------


async def execute(session: Session, client: PacketStream, plan: Execute) -> bool:
    """Run an Execute plan; True when the backend accepted it (its ops may be saved)."""
    if plan.sql is None:
        if plan.decoder is None:
            client.write(make_ok(status=session.status))
        else:
            values = decode(plan.decoder, [])
            await send_result(
                client, session.capabilities, plan.decoder, values, status=session.status
            )
        return True
    if plan.decoder is None:
        session.backend.send(bytes((COM_QUERY,)) + plan.sql.encode("utf-8"))
        status = await relay_response(session.backend, client, session.capabilities)
        if status is None:
            return False
        session.status = status
        return True
    result = await read_result(session, client, plan.sql)
    if result is None:
        return False
    session.status = result.status
    values = decode(plan.decoder, result.rows)
    await send_result(
        client,
        session.capabilities,
        plan.decoder,
        values,
        status=result.status,
        warnings=result.warnings,
    )
    return True


async def evaluate(session: Session, client: PacketStream, plan: Evaluate) -> None:
    """Fetch the backend's information_schema rows, answer from them in the proxy
    (proxy.rewrite.infoschema): the client's query itself never reaches the backend."""
    fetched = []
    for sql in plan.fetch:
        result = await read_result(session, client, sql)
        if result is None:
            return  # the backend's ERR was relayed
        session.status = result.status
        definitions = [ColumnDefinition.decode(d) for d in result.definitions]
        fetched.append((definitions, result.rows))
    try:
        decoder = plan.finish(fetched)  # a Refusal: a query it cannot evaluate
    except MysqlError:
        raise
    except Exception as e:
        # A bug must not cost the client its connection; type and stack only (no names).
        log.error(
            "information_schema evaluation failed with %s\n%s",
            type(e).__name__,
            "".join(traceback.format_tb(e.__traceback__)),
        )
        raise cryptdb_error(
            ER_CRYPTDB_SESSION, "internal error while answering an information_schema query"
        ) from None
    values = decoder.decode([])
    await send_result(client, session.capabilities, decoder, values, status=session.status)


async def read_modify_write(session: Session, client: PacketStream, plan: ReadModifyWrite) -> None:
    """The client's transaction if one is open (or autocommit is off), else our own."""
    backend = session.backend
    own = not session.status & STATUS_IN_TRANS and bool(session.status & STATUS_AUTOCOMMIT)
    if own:
        session.status = parse_ok(await backend.simple_command(COM_QUERY, b"BEGIN")).status
    done = False
    try:
        result = await read_result(session, client, plan.select_sql)
        if result is None:
            return
        update = plan.finish(result.rows)
        if update is None:
            reply = make_ok(status=result.status, info=b"Rows matched: 0  Changed: 0  Warnings: 0")
        else:
            backend.send(bytes((COM_QUERY,)) + update.encode("utf-8"))
            reply = await backend.read()
            if reply[0] != 0x00:
                client.write(reply)  # an ERR (e.g. a duplicate key)
                return
        done = True
    finally:
        if own:
            verb = b"COMMIT" if done else b"ROLLBACK"
            ok = parse_ok(await backend.simple_command(COM_QUERY, verb))
            session.status = ok.status
    ok = parse_ok(reply)
    if not own:
        session.status = ok.status
    client.write(
        make_ok(
            affected_rows=ok.affected_rows,
            last_insert_id=ok.last_insert_id,
            status=session.status,
            warnings=ok.warnings,
            info=ok.info,
        )
    )


async def run_peels(session: Session, plan: PeelFirst) -> None:
    """Each peel exactly once (proxy.rewrite.plan.Peel), on a backend connection of its own:
    a ROLLBACK on the client's connection must never undo a peel the metadata recorded."""
    catalog = session.catalog
    assert catalog is not None
    try:
        async with catalog.peel_gate.peel():
            await _run_peels(session, plan)
    except PeelBusy:
        raise cryptdb_error(
            ER_CRYPTDB_SESSION,
            "an onion adjustment this statement needs waits on writes still running; retry",
        ) from None


async def _run_peels(session: Session, plan: PeelFirst) -> None:
    address = session.address
    try:
        conn = await aiomysql.connect(
            host=address.host,
            port=address.port,
            unix_socket=address.unix_socket,
            user=session.username,
            password=session.password.decode("latin-1"),
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=address.connect_timeout,
            program_name="cryptdb-peel",
        )
    except (pymysql.err.MySQLError, OSError, TimeoutError):
        raise cryptdb_error(
            ER_CRYPTDB_SESSION, "cannot open a backend connection for an onion adjustment"
        ) from None
    try:
        async with conn.cursor() as cur:
            await cur.execute(f"SET SESSION innodb_lock_wait_timeout = {PEEL_LOCK_WAIT}")
            for peel in plan.peels:
                outcome = await _peel(conn, cur, session, peel)
                _record(session, peel, outcome)
    except pymysql.err.MySQLError as e:
        code = e.args[0] if e.args and isinstance(e.args[0], int) else 0
        # Never the server's message: it could quote the peel statement and its key.
        if code == ER_LOCK_WAIT_TIMEOUT:
            raise cryptdb_error(
                ER_CRYPTDB_SESSION,
                "this statement needs an onion adjustment that waits on rows your open "
                "transaction holds: COMMIT or ROLLBACK, then retry",
            ) from None
        if code == ER_SP_DOES_NOT_EXIST:
            raise cryptdb_error(
                ER_CRYPTDB_SESSION,
                "the backend lacks the cryptdb UDFs needed for an onion adjustment "
                "(run `cryptdb udf install`)",
            ) from None
        log.error("onion adjustment failed with backend error %s", code)
        raise cryptdb_error(
            ER_CRYPTDB_SESSION, f"an onion adjustment failed on the backend (error {code})"
        ) from None
    finally:
        conn.close()


def _record(session: Session, peel: Peel, outcome: str) -> None:
    """Metadata and audit after the backend committed the peel. If the keystore cannot be
    written, the backend's layers table still says the peel happened: the next statement
    that needs it records it then ("already peeled")."""
    assert session.catalog is not None
    try:
        session.catalog.apply([peel.op()])
    except (KeystoreError, InsecurePermissions, OSError) as e:
        log.error("onion adjustment %s not recorded: %s", peel.describe(), type(e).__name__)
        raise cryptdb_error(
            ER_CRYPTDB_SESSION, "the proxy's keystore cannot be written; see its log"
        ) from None
    try:
        session.catalog.audit(session.username, session.peer, peel, outcome)
    except OSError as e:
        log.error("audit log not written for %s: %s", peel.describe(), type(e).__name__)


async def _peel(conn: Any, cur: Any, session: Session, peel: Peel) -> str:
    assert session.catalog is not None
    for sql in peel.setup_sql():
        await cur.execute(sql)
    await conn.begin()
    try:
        await cur.execute(peel.lock_sql())
        (layer,) = await cur.fetchone()
        if layer == peel.from_layer:
            await cur.execute(peel.sql(session.catalog.crypto))
            await cur.execute(peel.record_sql())
            outcome = "peeled"
        elif layer == peel.to_layer:
            outcome = "already peeled"
        else:
            raise cryptdb_error(
                ER_CRYPTDB_SESSION,
                f"{peel.database}.{peel.table}.{peel.column}: the backend records layer "
                f"{layer!r}, the keystore {peel.from_layer!r}; refusing to adjust it",
            )
        await conn.commit()
    except BaseException:
        await conn.rollback()
        raise
    return outcome
