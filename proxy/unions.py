"""Carrying out UnionOf plans (proxy.rewrite.union) on a session's connection: each branch
planned and run like a client's SELECT (peels, subqueries), its rows decrypted and kept,
then the combined result sent with the UNION's metadata. In autocommit mode each branch is a
read of its own (the latest committed rows); inside a transaction, of its snapshot.
Derived plans (proxy.rewrite.derived) the same way: the inner SELECTs run, the outer query's
answer made here from their rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxy import execute
from proxy.catalog import Catalog
from proxy.rewrite import Derived, UnionOf
from proxy.stream import PacketStream
from proxy.subqueries import derived_result, union_result

if TYPE_CHECKING:
    from proxy.session import Session


async def run(
    session: Session, client: PacketStream, cat: Catalog, plan: UnionOf | Derived
) -> None:
    in_trans = session.status & execute.STATUS_IN_TRANS
    token = cat.schema.token
    if isinstance(plan, UnionOf):
        decoder, values = await union_result(session, cat, plan)
    else:
        decoder, values = await derived_result(session, cat, plan)
    await execute.send_result(client, session.capabilities, decoder, values, status=session.status)
    session.state.after_statement(session.status, in_trans, token)
