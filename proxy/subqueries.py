"""Carrying out SubqueriesFirst plans (proxy.rewrite.subquery) on a session's connection.

    each inner statement   planned like a client's statement (peels, nested subqueries),
                           run on the backend, its rows decrypted and kept: nothing goes to
                           the client
    the outer statement    plan.outer(rows): the statement with constants in place of the
                           subqueries, planned and carried out as usual (its constants are
                           encrypted by the ordinary rewrite)

UPDATE / DELETE (plan.write) outside a transaction run inner and outer statements in one
transaction of our own; the inner reads lock what they read (LOCK IN SHARE MODE), so the
write sees what it was decided on. A peel needed meanwhile would wait on those very locks:
roll back, peel, start over. A SELECT in autocommit mode makes separate reads (one per
statement), each seeing the latest committed rows, as documented in docs/rewrite.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from proxy import execute
from proxy.catalog import Catalog
from proxy.protocol.codec import (
    ColumnDefinition,
)
from proxy.relay import relay_response
from proxy.rewrite import (
    Decoder,
    Derived,
    Execute,
    PassThrough,
    PeelFirst,
    Plan,
    ReadModifyWrite,
    SubqueriesFirst,
    UnionOf,
)
from proxy.rewrite.errors import ER_CRYPTDB_SESSION
from proxy.rewrite.subquery_values import typed_value
from proxy.stream import PacketStream

if TYPE_CHECKING:
    from proxy.session import Session

COM_QUERY = 0x03
MAX_DEPTH = 8


class _Reply:
    """Stands in for the client while our own transaction is open: the write's OK carries
    the flags of that transaction, the client must get those after its COMMIT."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.packets: list[bytes] = []

    def write(self, payload: bytes) -> None:
        self.packets.append(payload)

    async def flush(self) -> None:
        pass

    async def maybe_flush(self) -> None:
        pass


class _NeedsPeels(Exception):
    def __init__(self, plan: PeelFirst) -> None:
        self.plan = plan


async def run(session: Session, client: PacketStream, cat: Catalog, plan: SubqueriesFirst) -> None:
    in_trans = session.status & execute.STATUS_IN_TRANS
    token = cat.schema.token
    own = plan.write and execute.own_transaction(session)
    for _ in range(execute.PLAN_ATTEMPTS):
        if not own:
            await _carry_out(session, client, cat, plan, own=False)
            session.state.after_statement(session.status, in_trans, token)
            return
        await execute.begin(session)
        reply = _Reply()
        try:
            await _carry_out(session, reply, cat, plan, own=True)  # type: ignore[arg-type]
        except _NeedsPeels as e:
            await execute.end(session, commit=False)
            await execute.run_peels(session, e.plan)
            continue
        except BaseException:
            await execute.end(session, commit=False)
            raise
        failed = reply.packets[-1][:1] == b"\xff"
        await execute.end(session, commit=not failed)
        session.state.after_statement(session.status, in_trans, token)
        if failed:
            client.write(reply.packets[-1])
        else:  # the write's OK, with the flags after COMMIT (no transaction open)
            execute.relay_ok(client, reply.packets[-1], session.status)
        return
    raise execute.cryptdb_error(ER_CRYPTDB_SESSION, "onion adjustments did not settle; retry")


async def _carry_out(
    session: Session, client: PacketStream, cat: Catalog, plan: SubqueriesFirst, *, own: bool
) -> None:
    results = [await decoded(session, cat, sql, own, 1) for sql in plan.inner]
    sql = plan.outer([rows for _, rows in results])
    for _ in range(execute.PLAN_ATTEMPTS):
        if plan.write:
            # Planned and run with no peel in between (proxy.catalog.PeelGate).
            async with cat.peel_gate.write():
                outer = session._plan(cat, sql, cache=False)
                if not isinstance(outer, PeelFirst):
                    try:
                        await _send(session, client, plan.finished(outer, results), sql)
                    except execute.StaleLayers:
                        continue  # another proxy peeled an onion the write stores: again
                    return
        else:
            outer = session._plan(cat, sql, cache=False)
            if not isinstance(outer, PeelFirst):
                await _send(session, client, plan.finished(outer, results), sql)
                return
        if own:
            raise _NeedsPeels(outer)
        await execute.run_peels(session, outer)
    raise execute.cryptdb_error(ER_CRYPTDB_SESSION, "onion adjustments did not settle; retry")


async def _send(session: Session, client: PacketStream, plan: Plan, sql: str) -> None:
    """The outer statement's plan, its reply to the client."""
    if isinstance(plan, PassThrough):  # the outer statement touches no encrypted table
        session.backend.send(bytes((COM_QUERY,)) + sql.encode("utf-8"))
        status = await relay_response(session.backend, client, session.capabilities)
        if status is not None:
            session.status = status
    elif isinstance(plan, ReadModifyWrite):
        await execute.read_modify_write(session, client, plan)
    elif isinstance(plan, Execute) and not plan.ops and plan.guards:
        await execute.guarded_write(session, client, plan)  # StaleLayers: plan it again
    elif isinstance(plan, Execute) and not plan.ops:
        await execute.execute(session, client, plan)
    else:  # every subquery was replaced, and SELECT / UPDATE / DELETE change no schema
        raise execute.cryptdb_error(ER_CRYPTDB_SESSION, "unexpected plan for a subquery")


async def decoded(
    session: Session,
    cat: Catalog,
    sql: str,
    own: bool = False,
    depth: int = 1,
    finish: Callable[[Plan], Plan] | None = None,
) -> tuple[Decoder | None, list[tuple[Any, ...]]]:
    """One inner statement's decoder (None: passed through) and rows, decrypted; nothing
    reaches the client. `finish`: what a SubqueriesFirst does to its outer plan."""
    if depth > MAX_DEPTH:
        raise execute.cryptdb_error(ER_CRYPTDB_SESSION, "subqueries nested too deeply")
    for _ in range(execute.PLAN_ATTEMPTS):
        plan = session._plan(cat, sql, cache=finish is None)  # an outer statement: not kept
        if not isinstance(plan, PeelFirst):
            break
        if own:
            raise _NeedsPeels(plan)
        await execute.run_peels(session, plan)
    else:
        raise execute.cryptdb_error(ER_CRYPTDB_SESSION, "onion adjustments did not settle; retry")
    if finish is not None:
        plan = finish(plan)
    if isinstance(plan, SubqueriesFirst):
        sub = plan
        inner = [await decoded(session, cat, s, own, depth + 1) for s in sub.inner]
        outer_sql = sub.outer([rows for _, rows in inner])
        return await decoded(
            session, cat, outer_sql, own, depth + 1, lambda p: sub.finished(p, inner)
        )
    if isinstance(plan, UnionOf):  # a UNION as a subquery
        return await union_result(session, cat, plan, own, depth + 1)
    if isinstance(plan, Derived):  # a SELECT over a derived table as a subquery
        return await derived_result(session, cat, plan, own, depth + 1)
    if isinstance(plan, PassThrough):
        definitions, raw = await _query(session, sql)
        return None, [
            tuple(typed_value(d.type, d.charset, v) for d, v in zip(definitions, row, strict=True))
            for row in raw
        ]
    if not isinstance(plan, Execute) or plan.sql is None or plan.decoder is None:
        raise execute.cryptdb_error(ER_CRYPTDB_SESSION, "unexpected plan for a subquery")
    _, raw = await _query(session, plan.sql)
    return plan.decoder, execute.decode(plan.decoder, raw)


async def union_result(
    session: Session, cat: Catalog, plan: UnionOf, own: bool = False, depth: int = 1
) -> tuple[Decoder, list[tuple[Any, ...]]]:
    """A UNION's combined result: each branch planned and run as a SELECT of its own."""
    results = []
    for s in plan.branches:
        d, rows = await decoded(session, cat, s, own, depth)
        if d is None:  # a branch on tables the proxy did not create: refused when planned
            raise execute.cryptdb_error(ER_CRYPTDB_SESSION, "unexpected plan for a UNION")
        results.append((d, rows))
    return plan.combine(results)


async def derived_result(
    session: Session, cat: Catalog, plan: Derived, own: bool = False, depth: int = 1
) -> tuple[Decoder, list[tuple[Any, ...]]]:
    """A SELECT over derived tables: each inner SELECT run as a statement of its own, the
    outer query evaluated on their decrypted rows (proxy.rewrite.derived)."""
    return plan.finish([await decoded(session, cat, s, own, depth) for s in plan.inner])


async def _query(
    session: Session, sql: str
) -> tuple[list[ColumnDefinition], list[list[bytes | None]]]:
    """A result set read whole (an ERR raises BackendError: the caller answers with it)."""
    result = await execute.read_result(session, None, sql)
    assert result is not None
    session.status = result.status
    return [ColumnDefinition.decode(d) for d in result.definitions], result.rows
