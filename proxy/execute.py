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
    parse_err,
    parse_ok,
    parse_text_row,
    read_lenenc_int,
)
from proxy.protocol.errors import BackendError, BackendUnavailable, MysqlError
from proxy.relay import relay_response
from proxy.rewrite import Decoder, Evaluate, Execute, Peel, PeelFirst, Plan, ReadModifyWrite
from proxy.rewrite.errors import ER_CRYPTDB_DECRYPT, ER_CRYPTDB_SESSION
from proxy.rewrite.plan import Guard, hold_layers_sql, layer_setup_sql
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


__all__ = [
    "Plan",
    "StaleLayers",
    "evaluate",
    "execute",
    "guarded_write",
    "read_modify_write",
    "run_peels",
]


def cryptdb_error(code: int, message: str) -> MysqlError:
    return MysqlError(code, "HY000", f"cryptdb: {message}")


def internal_error(e: BaseException, message: str) -> MysqlError:
    """A bug must not cost the client its connection, nor run the statement. Logged by type
    and stack only: an exception's text could quote SQL, values or names."""
    log.error(
        "%s: %s\n%s", message, type(e).__name__, "".join(traceback.format_tb(e.__traceback__))
    )
    return cryptdb_error(ER_CRYPTDB_SESSION, message)


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


async def read_result(session: Session, client: PacketStream | None, sql: str) -> ResultSet | None:
    """Run `sql`; the rows of its result set, or None after relaying an OK/ERR reply to the
    client. Without a client (a statement the proxy runs for itself): an ERR raises
    BackendError, an OK is an empty result."""
    backend = session.backend
    backend.send(bytes((COM_QUERY,)) + sql.encode("utf-8"))
    first = await backend.read()
    if first[0] == 0xFF:
        return _answer_err(client, first)
    if first[0] == 0x00:  # no result set (not expected from a planned SELECT)
        session.status = parse_ok(first).status
        if client is None:
            return ResultSet([], session.status, 0)
        client.write(first)
        return None
    count, _ = read_lenenc_int(first, 0)
    count = count or 0
    # The backend's definitions name ciphertext columns: never sent on (Evaluate reads them).
    # Usually all received with the first packet: no coroutine per packet then.
    definitions = [backend.next_buffered() or await backend.read() for _ in range(count)]
    if not is_eof(backend.next_buffered() or await backend.read()):
        raise BackendUnavailable("backend sent a malformed result set")
    rows: list[list[bytes | None]] = []
    while True:
        pkt = backend.next_buffered() or await backend.read()
        if pkt[0] == 0xFE and len(pkt) < 9:
            warnings, status = parse_eof(pkt)
            return ResultSet(rows, status, warnings, definitions)
        if pkt[0] == 0xFF:
            return _answer_err(client, pkt)
        rows.append(parse_text_row(pkt, count))


def _answer_err(client: PacketStream | None, err: bytes) -> None:
    if client is None:
        raise BackendError(*parse_err(err))
    client.write(err)


def decode(decoder: Decoder, rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    try:
        return decoder.decode(rows)
    except InvalidCiphertext:
        # No detail: which value failed says something about the data.
        raise cryptdb_error(
            ER_CRYPTDB_DECRYPT, "a stored value did not decrypt (wrong keystore or damaged data)"
        ) from None


# Encoded column count + definitions per cached plan's column list (~10 µs a statement on a
# one-column point select). A plan's DecoderSpec hands the same list to every Decoder it
# binds; the entry keeps that list alive, so its id cannot be reused while cached. Columns
# whose definition is the backend's (OutCol.relay) are part of the key: those packets.
_DEFINITIONS: dict[int, tuple[list[Any], str, tuple[int, ...], tuple[Any, ...], list[bytes]]] = {}
_DEFINITIONS_MAX = 1024  # plans in the shape cache are far fewer; one-off lists age out


def definition_packets(decoder: Decoder, backend: Sequence[bytes] = ()) -> list[bytes]:
    """The column-count packet and each column's definition, as the client gets them;
    `backend`: the raw definitions of the result set the rows were read from."""
    if type(decoder) is not Decoder:  # ListDecoder, RowsDecoder...: their own definitions()
        return _encode_definitions(decoder, backend)
    columns, database = decoder.columns, decoder.database
    entry = _DEFINITIONS.get(id(columns))
    if (
        entry is not None
        and entry[0] is columns
        and entry[1] == database
        and len(entry[4]) == len(columns) + 1
        and (not entry[2] or entry[3] == _relayed(backend, entry[2]))
    ):
        return entry[4]
    packets = _encode_definitions(decoder, backend)
    relays = tuple(c.relay for c in columns if c.relay is not None)
    if len(_DEFINITIONS) >= _DEFINITIONS_MAX:
        _DEFINITIONS.clear()
    _DEFINITIONS[id(columns)] = (columns, database, relays, _relayed(backend, relays), packets)
    return packets


def _relayed(backend: Sequence[bytes], relays: tuple[int, ...]) -> tuple[Any, ...]:
    return tuple(backend[i] if i < len(backend) else None for i in relays)


def _encode_definitions(decoder: Decoder, backend: Sequence[bytes]) -> list[bytes]:
    definitions = decoder.definitions(backend)
    return [lenenc_int(len(definitions))] + [d.encode() for d in definitions]


async def send_result(
    client: PacketStream,
    capabilities: int,
    decoder: Decoder,
    values: list[tuple[Any, ...]],
    *,
    status: int,
    warnings: int = 0,
    backend: Sequence[bytes] = (),
) -> None:
    write = client.write
    for pkt in definition_packets(decoder, backend):
        write(pkt)
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
    decoder = plan.decoder
    result = None
    if plan.small is not None:
        small_sql, small_decoder, most = plan.small
        result = await read_result(session, client, small_sql)
        if result is None:
            return False
        if len(result.rows) <= most:
            decoder = small_decoder
        else:
            result = None
    if result is None:
        result = await read_result(session, client, plan.sql)
    if result is None:
        return False
    session.status = result.status
    relay = result.definitions if decoder is plan.decoder else ()
    await send_decoded(session, client, plan.decoder, decode(decoder, result.rows), result, relay)
    return True


async def send_decoded(
    session: Session,
    client: PacketStream,
    decoder: Decoder,
    values: list[tuple[Any, ...]],
    result: ResultSet,
    backend: Sequence[bytes],
) -> None:
    """A decoded result with the session's flags and the backend result's warnings."""
    await send_result(
        client,
        session.capabilities,
        decoder,
        values,
        status=session.status,
        warnings=result.warnings,
        backend=backend,
    )


def own_transaction(session: Session) -> bool:
    """No transaction open and autocommit on: a statement needing one gets BEGIN ... COMMIT."""
    return not session.status & STATUS_IN_TRANS and bool(session.status & STATUS_AUTOCOMMIT)


BEGIN, COMMIT = bytes((COM_QUERY,)) + b"BEGIN", bytes((COM_QUERY,)) + b"COMMIT"


async def begin(session: Session, *, deferred: bool = False) -> None:
    """BEGIN; `deferred`: sent with the next command, which must only read (Backend.defer)."""
    if deferred:
        session.backend.defer(BEGIN)
        session.status |= STATUS_IN_TRANS  # as BEGIN's OK will say; end() sets the real flags
        return
    session.status = parse_ok(await session.backend.simple_command(COM_QUERY, b"BEGIN")).status


async def end(session: Session, commit: bool) -> None:
    reply = await session.backend.simple_command(COM_QUERY, b"COMMIT" if commit else b"ROLLBACK")
    ended(session, reply)


def ended(session: Session, reply: bytes) -> None:
    """The reply to COMMIT / ROLLBACK."""
    if reply[0] == 0xFF:
        raise BackendError(*parse_err(reply))
    session.status = parse_ok(reply).status


async def write_and_commit(session: Session, sql: str) -> bytes:
    """The write of our own transaction and its COMMIT in one round trip; the write's reply.
    When the write fails, the COMMIT ends a transaction that has only read (share locks, a
    SELECT ... FOR UPDATE): the same as a ROLLBACK."""
    backend = session.backend
    backend.send(bytes((COM_QUERY,)) + sql.encode("utf-8"), COMMIT)
    reply = await backend.read()
    backend.next_reply()
    ended(session, await backend.read())
    return reply


async def guarded_write(session: Session, client: PacketStream, plan: Execute) -> None:
    """A write that stores onions at RND, with their layer rows share-locked from before the
    write until its transaction ends (the client's, or BEGIN ... COMMIT of our own)."""
    assert plan.sql is not None
    own = own_transaction(session)
    if not own:
        await hold_layers(session, plan.guards)
        await execute(session, client, plan)
        return
    await begin(session, deferred=True)  # sent with the layers' lock read
    if plan.decoder is not None:  # INSERT ... RETURNING: its rows, sent once committed
        result = None
        try:
            await hold_layers(session, plan.guards)
            result = await read_result(session, None, plan.sql)  # an ERR: BackendError
        finally:
            await end(session, commit=result is not None)
        values = decode(plan.decoder, result.rows)
        await send_decoded(session, client, plan.decoder, values, result, result.definitions)
        return
    committing = False
    try:
        await hold_layers(session, plan.guards)
        committing = True
        reply = await write_and_commit(session, plan.sql)
    finally:
        if not committing:
            await end(session, commit=False)
    if reply[0] != 0x00:
        client.write(reply)  # an ERR (a duplicate key, a bad value): rolled back
        return
    relay_ok(client, reply, session.status)


def relay_ok(client: PacketStream, reply: bytes, status: int) -> None:
    """The backend's OK for a statement run inside our own transaction, with the session's
    flags after its COMMIT."""
    ok = parse_ok(reply)
    client.write(
        make_ok(
            affected_rows=ok.affected_rows,
            last_insert_id=ok.last_insert_id,
            status=status,
            warnings=ok.warnings,
            info=ok.info,
        )
    )


class StaleLayers(Exception):
    """A guarded onion was peeled after the write was planned (by another proxy): the
    layers the backend reports are recorded, and the statement is planned again."""


async def hold_layers(session: Session, guards: Sequence[Guard]) -> None:
    """Share-lock the guarded onions' rows of `<db>._cryptdb_layers` in the current
    transaction; StaleLayers when one is no longer at RND.

    A peel holds its row FOR UPDATE from before it reads the layer until it commits, so
    with this lock held a peel either committed before (seen here) or waits for the write's
    COMMIT and then peels the written rows too."""
    catalog = session.catalog
    assert catalog is not None
    schema = catalog.schema
    names = {d.id: d.name for d in schema.databases.values()}
    if any(g[0] not in names for g in guards):
        raise StaleLayers()  # dropped meanwhile: plan again, the rewriter will say so
    missing = [g for g in guards if g not in catalog.layer_rows]
    if missing:
        await _create_layer_rows(session, [(names[g[0]], g) for g in missing])
        catalog.layer_rows.update(missing)
    by_db: dict[str, list[Guard]] = {}
    for g in guards:
        by_db.setdefault(names[g[0]], []).append(g)
    stale: list[Peel] = []
    for db, gs in by_db.items():
        rows = await session.backend.query_rows(hold_layers_sql(db, gs).encode())
        found = {(int(t), int(c), bytes(o).decode()): bytes(v).decode() for t, c, o, v in rows}  # type: ignore[arg-type]
        for g in gs:
            layer = found.get(g[1:])
            if layer is None:  # the row vanished (a dropped table, a restored server)
                catalog.layer_rows.discard(g)
                raise StaleLayers()
            if layer != "rnd":
                stale.append(_peel_seen(schema, db, g, layer))
    if stale:
        # Only the metadata catches up: the peel itself was audited by whoever made it.
        _save_layers(session, stale)
        raise StaleLayers()


def _peel_seen(schema: Any, database: str, g: Guard, layer: str) -> Peel:
    """The peel another proxy made, as a Peel to record (its metadata may lag the backend)."""
    db = schema.database(database)
    table = next(t for t in db.tables.values() if t.id == g[1])
    col = table.column_by_id(g[2])
    return Peel(database, table.name, col.name, g[3], "rnd", layer, db.id, table.id, col,
                table.backend_name)  # fmt: skip


ER_NO_SUCH_TABLE = 1146


async def prepare_layer_rows(session: Session, ops: Sequence[dict[str, Any]]) -> None:
    """After CREATE / ALTER TABLE (which committed any client transaction): the layer rows
    of the new onions, made now, so that a later write inside a transaction finds them
    (made then, an insert could wait on the gap locks of the transaction's own guards)."""
    catalog = session.catalog
    assert catalog is not None
    schema = catalog.schema
    todo: list[tuple[str, Guard]] = []
    for op in ops:
        if op.get("op") not in ("add_table", "replace_table"):
            continue
        db = schema.database(op["database"])
        table = db.tables.get(op["table"]["name"]) if db is not None else None
        if db is None or table is None:
            continue
        for col in table.columns:
            for onion in ("eq", "ord"):
                g = (db.id, table.id, col.id, onion)
                if col.onions.get(onion) == "rnd" and g not in catalog.layer_rows:
                    todo.append((db.name, g))
    if not todo:
        return
    try:
        await _create_layer_rows(session, todo)
    except MysqlError:
        return  # logged; the first write makes them instead
    catalog.layer_rows.update(g for _, g in todo)


def _text(v: object) -> str:
    return v.decode() if isinstance(v, bytes | bytearray) else str(v)


async def _create_layer_rows(session: Session, rows: Sequence[tuple[str, Guard]]) -> None:
    """Layer rows for onions never peeled, on a connection of its own (autocommit): the
    client's transaction must hold only record locks on rows that exist. Rows that exist
    already (made by another process, or before a restart) are read, not written: the
    layers table's CREATE ... IF NOT EXISTS would wait for the metadata lock of a client
    transaction that read it (this session's own, holding earlier writes' guards)."""
    conn = await _side_connection(session, "cryptdb-layers")
    try:
        async with conn.cursor() as cur:
            await cur.execute(f"SET SESSION innodb_lock_wait_timeout = {PEEL_LOCK_WAIT}")
            by_db: dict[str, list[Guard]] = {}
            for database, g in rows:
                by_db.setdefault(database, []).append(g)
            for database, gs in by_db.items():
                try:
                    await cur.execute(hold_layers_sql(database, gs, lock=False))
                    found = await cur.fetchall()
                    have = {(int(t), int(c), _text(o)) for t, c, o, _ in found}
                except pymysql.err.ProgrammingError as e:
                    if e.args[0] != ER_NO_SUCH_TABLE:
                        raise
                    have = set()
                for _, tid, cid, onion in gs:
                    if (tid, cid, onion) in have:
                        continue
                    for sql in layer_setup_sql(database, tid, cid, onion):
                        await conn.query(sql)  # not a cursor: its warnings ("exists") are expected
    except pymysql.err.MySQLError as e:
        code = e.args[0] if e.args and isinstance(e.args[0], int) else 0
        log.error("layers table set-up failed with backend error %s", code)
        raise cryptdb_error(
            ER_CRYPTDB_SESSION, f"the onion layers table could not be set up (error {code})"
        ) from None
    finally:
        conn.close()


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
        raise internal_error(
            e, "internal error while answering an information_schema query"
        ) from None
    values = decoder.decode([])
    await send_result(client, session.capabilities, decoder, values, status=session.status)


async def read_modify_write(session: Session, client: PacketStream, plan: ReadModifyWrite) -> None:
    """The client's transaction if one is open (or autocommit is off), else our own."""
    backend = session.backend
    own = own_transaction(session)
    if own:
        await begin(session, deferred=True)  # sent with the first read below
    settled = not own  # our transaction ended (or none was begun)
    try:
        if plan.guards:
            await hold_layers(session, plan.guards)
        result = await read_result(session, client, plan.select_sql)
        if result is None:
            return
        update = plan.finish(result.rows)
        if update is None:
            reply = make_ok(status=result.status, info=b"Rows matched: 0  Changed: 0  Warnings: 0")
            if own:
                settled = True
                await end(session, commit=True)
        elif own:
            settled = True
            reply = await write_and_commit(session, update)
        else:
            backend.send(bytes((COM_QUERY,)) + update.encode("utf-8"))
            reply = await backend.read()
        if reply[0] != 0x00:
            client.write(reply)  # an ERR (e.g. a duplicate key)
            return
    finally:
        if not settled:
            await end(session, commit=False)
    if not own:
        session.status = parse_ok(reply).status
    relay_ok(client, reply, session.status)


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


async def _side_connection(session: Session, program: str) -> Any:
    """A backend connection of the session's user, apart from the client's."""
    address = session.address
    try:
        return await aiomysql.connect(
            host=address.host,
            port=address.port,
            unix_socket=address.unix_socket,
            user=session.username,
            password=session.password.decode("latin-1"),
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=address.connect_timeout,
            program_name=program,
        )
    except (pymysql.err.MySQLError, OSError, TimeoutError):
        raise cryptdb_error(
            ER_CRYPTDB_SESSION, "cannot open a backend connection for an onion adjustment"
        ) from None


async def _run_peels(session: Session, plan: PeelFirst) -> None:
    conn = await _side_connection(session, "cryptdb-peel")
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
                "this statement needs an onion adjustment that waits on rows an open "
                "transaction holds (yours, or another session's writes to the column): "
                "COMMIT or ROLLBACK, then retry",
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
    _save_layers(session, [peel])
    try:
        session.catalog.audit(session.username, session.peer, peel, outcome)
    except OSError as e:
        log.error("audit log not written for %s: %s", peel.describe(), type(e).__name__)


def _save_layers(session: Session, peels: Sequence[Peel]) -> None:
    assert session.catalog is not None
    try:
        session.catalog.apply([peel.op() for peel in peels])
    except (KeystoreError, InsecurePermissions, OSError) as e:
        log.error("onion adjustment not recorded: %s", type(e).__name__)
        raise cryptdb_error(
            ER_CRYPTDB_SESSION, "the proxy's keystore cannot be written; see its log"
        ) from None


async def _peel(conn: Any, cur: Any, session: Session, peel: Peel) -> str:
    assert session.catalog is not None
    for sql in peel.setup_sql():
        await conn.query(sql)  # not a cursor: its warnings ("exists") are expected
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
