"""A stand-in for the session, for the rewrite tests: plans executed straight on MariaDB.

`EncryptedRunner.execute(sql)` does what the proxy's session must do with a plan: peel and
record, run, decode, read-modify-write in a transaction, apply DDL ops to the schema,
fetch information_schema rows and evaluate (Evaluate).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import pymysql
from pymysql.constants import CLIENT

from onion import KeyCache, PaillierPrivateKey
from proxy.devbackend import DEMO_PASSWORD, DEMO_USER, DevBackend
from proxy.protocol.codec import ColumnDefinition
from proxy.rewrite import (
    Crypto,
    Derived,
    Evaluate,
    Execute,
    PassThrough,
    Peel,
    PeelFirst,
    ReadModifyWrite,
    Rewriter,
    SubqueriesFirst,
    UnionOf,
)
from proxy.rewrite.subquery_values import typed_value
from proxy.schema import Schema


@lru_cache(maxsize=1)
def paillier_hex() -> str:
    """One Paillier key per test run (generation takes a moment)."""
    return PaillierPrivateKey.generate().to_bytes().hex()


def connect(backend: DevBackend, database: str, **kw: Any) -> pymysql.Connection:
    return pymysql.connect(
        host="127.0.0.1",
        port=backend.port,
        user=DEMO_USER,
        password=DEMO_PASSWORD,
        database=database,
        autocommit=True,
        **kw,
    )


@contextmanager
def extra_database(backend: DevBackend, prefix: str = "enc") -> Iterator[str]:
    name = f"{prefix}_{secrets.token_hex(6)}"
    with backend.admin() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    try:
        yield name
    finally:
        with backend.admin() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


def plain_outcome(cur: Any, sql: str) -> object:
    """Rows (a list) or the affected-row count on a plaintext connection, ("error", code)
    when MariaDB refuses: one side of a differential comparison."""
    try:
        cur.execute(sql)
        return list(cur.fetchall()) if cur.description else cur.rowcount
    except pymysql.MySQLError as e:
        return ("error", e.args[0])


def encrypted_outcome(runner: EncryptedRunner, sql: str) -> object:
    """The same for the rewriter's side (refusals are errors with their code too)."""
    from proxy.protocol.errors import MysqlError

    try:
        return runner.execute(sql)
    except pymysql.MySQLError as e:
        return ("error", e.args[0])
    except MysqlError as e:
        return ("error", e.code)


def _b(v: str | bytes | None) -> bytes:
    return v.encode() if isinstance(v, str) else (v or b"")


def field_definitions(cur: Any) -> list[ColumnDefinition]:
    """The last result's column definitions as the proxy's session parses them."""
    return [
        ColumnDefinition(
            name=_b(f.name),
            type=f.type_code,
            length=f.length,
            flags=f.flags,
            decimals=f.scale,
            charset=f.charsetnr,
            schema=_b(f.db),
            table=_b(f.table_name),
            org_table=_b(f.org_table),
            org_name=_b(f.org_name),
        )
        for f in cur._result.fields
    ]


BOTH_FAILED = ("both", "failed")


def compare_outcomes(
    cur: Any, runner: EncryptedRunner, sql: str, ordered: bool, where: Any
) -> object:
    """One statement on the plaintext copy and through the rewriter: the same error code on
    both sides (BOTH_FAILED), or equal results (multisets unless `ordered`), returned."""
    from tests.rewrite_workload import same

    p = plain_outcome(cur, sql)
    e = encrypted_outcome(runner, sql)
    at = (where, sql, p, e)
    if isinstance(p, tuple):
        assert e == p, at
        return BOTH_FAILED
    assert not isinstance(e, tuple), at
    assert same(p, e, ordered), at
    return p


class EncryptedRunner:
    """Executes plaintext SQL through the rewriter against an encrypted database."""

    def __init__(
        self,
        backend: DevBackend,
        database: str,
        schema: Schema | None = None,
        master: bytes | None = None,
    ) -> None:
        # conv={}: every value arrives as the server sent it (bytes, or str for text columns),
        # as the proxy's relay sees the text protocol.
        # FOUND_ROWS: UPDATE counts matched rows. Every matched row of an encrypted column
        # changes (fresh IV), so "changed rows" cannot be told apart; see the module notes.
        self.conn = connect(backend, database, conv={}, client_flag=CLIENT.FOUND_ROWS)
        self.backend = backend
        self.database = database
        self.schema = schema or Schema()
        if not self.schema.paillier:
            self.schema.paillier = paillier_hex()
        self.crypto = Crypto(KeyCache(master or secrets.token_bytes(32)), self.schema)
        self.rewriter = Rewriter()
        self.peels: list[str] = []
        self.backend_sql: list[str] = []
        self.in_transaction = False
        self.tx_token = ""
        self._own_tx = False

    def _track_transaction(self, sql: str) -> None:
        word = sql.strip().split(None, 1)[0].upper() if sql.strip() else ""
        if word in ("BEGIN", "START"):
            self.in_transaction = True
            self.tx_token = self.schema.token
        elif word in ("COMMIT", "ROLLBACK"):
            self.in_transaction = False

    def plan(self, sql: str, cache: bool = True) -> Any:
        # Inside a transaction that began before the schema changed (a peel), read the
        # latest rows: the snapshot still holds the peeled onions' outer layer.
        current = self.in_transaction and self.schema.token != self.tx_token
        return self.rewriter.plan(
            sql,
            schema=self.schema,
            crypto=self.crypto,
            database=self.database,
            current_read=current,
            cache=cache,
        )

    def _settled(self, sql: str, cache: bool = True) -> Any:
        """The plan once its peels ran. Inside a transaction of our own (a write with
        subqueries) a peel would wait on our own row locks: _NeedsPeels, roll back, retry."""
        for _ in range(4):
            plan = self.plan(sql, cache=cache)
            if not isinstance(plan, PeelFirst):
                return plan
            if self._own_tx:
                raise _NeedsPeels(plan)
            self._peel(plan)
        raise AssertionError("peeling did not converge")

    def _peel(self, plan: PeelFirst) -> None:
        for peel in plan.peels:
            if self.run_peel(peel):
                self.peels.append(peel.describe())

    def _subqueries(self, plan: SubqueriesFirst) -> list[tuple[Any, ...]] | int:
        """Inner statements first, their decrypted rows kept; then the outer statement.
        UPDATE / DELETE outside a transaction: all of it in one of our own."""
        own = plan.write and not self.in_transaction

        def run() -> list[tuple[Any, ...]] | int:
            results = [self.decoded(s) for s in plan.inner]
            outer = plan.outer([rows for _, rows in results])
            return self.execute(outer, lambda p: plan.finished(p, results))

        if not own:
            return run()
        for _ in range(4):
            self.conn.begin()
            self.in_transaction, self.tx_token, self._own_tx = True, self.schema.token, True
            try:
                result = run()
                self.conn.commit()
                return result
            except _NeedsPeels as e:
                self.conn.rollback()
                self._own_tx = False
                self._peel(e.plan)
            except BaseException:
                self.conn.rollback()
                raise
            finally:
                self.in_transaction = self._own_tx = False
        raise AssertionError("peeling did not converge")

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """A subquery's rows, decrypted, as the session keeps them (nothing to the client)."""
        return self.decoded(sql)[1]

    def decoded(self, sql: str, finish: Any = None) -> tuple[Any, list[tuple[Any, ...]]]:
        """(decoder or None when passed through, decrypted rows) of one SELECT."""
        plan = self._settled(sql, cache=finish is None)  # an outer statement: not kept
        if finish is not None:
            plan = finish(plan)
        if isinstance(plan, SubqueriesFirst):
            sub = plan
            results = [self.decoded(s) for s in sub.inner]
            outer = sub.outer([rows for _, rows in results])
            return self.decoded(outer, lambda p: sub.finished(p, results))
        if isinstance(plan, UnionOf):
            return plan.combine([self.decoded(s) for s in plan.branches])
        if isinstance(plan, Derived):
            return plan.finish([self.decoded(s) for s in plan.inner])
        with self.conn.cursor() as cur:
            if isinstance(plan, PassThrough):
                cur.execute(sql)
                fields = cur._result.fields  # type codes and charsets, as the session reads
                return None, [
                    tuple(
                        typed_value(f.type_code, f.charsetnr, v)
                        for f, v in zip(fields, row, strict=True)
                    )
                    for row in cur.fetchall()
                ]
            assert isinstance(plan, Execute) and plan.sql and plan.decoder is not None
            self.backend_sql.append(plan.sql)
            cur.execute(plan.sql)
            return plan.decoder, plan.decoder.decode(cur.fetchall())

    def execute(self, sql: str, finish: Any = None) -> list[tuple[Any, ...]] | int:
        """Rows (decoded) for a query, the affected-row count otherwise. `finish`: what a
        SubqueriesFirst does to its outer statement's plan."""
        plan = self._settled(sql, cache=finish is None)  # an outer statement: not kept
        if finish is not None:
            plan = finish(plan)
        if isinstance(plan, SubqueriesFirst):
            return self._subqueries(plan)
        if isinstance(plan, UnionOf):  # each branch a SELECT of its own, combined here
            return plan.combine([self.decoded(s) for s in plan.branches])[1]
        if isinstance(plan, Derived):  # the outer query evaluated on the inner rows
            return plan.finish([self.decoded(s) for s in plan.inner])[1]
        with self.conn.cursor() as cur:
            if isinstance(plan, PassThrough):
                cur.execute(sql)
                self._track_transaction(sql)
                return list(cur.fetchall()) if cur.description else cur.rowcount
            if isinstance(plan, Evaluate):
                fetched = []
                for fetch in plan.fetch:
                    self.backend_sql.append(fetch)
                    cur.execute(fetch)
                    fetched.append((field_definitions(cur), list(cur.fetchall())))
                return plan.finish(fetched).decode([])
            if isinstance(plan, ReadModifyWrite):
                own = not self.in_transaction  # inside the client's transaction: use it
                if own:
                    self.conn.begin()
                try:
                    self.backend_sql.append(plan.select_sql)
                    cur.execute(plan.select_sql)
                    update = plan.finish(cur.fetchall())
                    count = 0
                    if update is not None:
                        self.backend_sql.append(update)
                        count = cur.execute(update)
                    if own:
                        self.conn.commit()
                except BaseException:
                    if own:
                        self.conn.rollback()
                    raise
                return count
            assert isinstance(plan, Execute)
            if plan.sql is None:  # answered here: a no-op, a rename, DESCRIBE ...
                for op in plan.ops:
                    self.schema.apply(op)
                return 0 if plan.decoder is None else plan.decoder.decode([])
            if plan.small is not None:  # few rows: aggregated here, else the plan's SQL
                small_sql, small_decoder, most = plan.small
                self.backend_sql.append(small_sql)
                cur.execute(small_sql)
                rows = cur.fetchall()
                if len(rows) <= most:
                    return small_decoder.decode(rows)
            self.backend_sql.append(plan.sql)
            count = cur.execute(plan.sql)
            for op in plan.ops:
                self.schema.apply(op)
            if plan.decoder is not None:
                return plan.decoder.decode(cur.fetchall())
            return count

    def run_peel(self, peel: Peel) -> bool:
        """The exactly-once peel protocol (proxy.rewrite.plan.Peel) on a connection of its
        own; True when this call peeled, False when another peeler had already done it."""
        conn = connect(self.backend, self.database)
        try:
            with conn.cursor() as cur:
                for sql in peel.setup_sql():
                    cur.execute(sql)
                conn.begin()
                cur.execute(peel.lock_sql())
                (layer,) = cur.fetchone()
                if layer == peel.from_layer:
                    cur.execute(peel.sql(self.crypto))
                    cur.execute(peel.record_sql())
                conn.commit()
        finally:
            conn.close()
        assert layer in (peel.from_layer, peel.to_layer)
        self.schema.apply(peel.op())
        return layer == peel.from_layer

    def close(self) -> None:
        self.conn.close()


class _NeedsPeels(Exception):
    def __init__(self, plan: PeelFirst) -> None:
        self.plan = plan


class DryRunner:
    """Plans without a database: peels and DDL ops are applied to the schema only."""

    def __init__(self, database: str = "db", master: bytes = bytes(32)) -> None:
        self.database = database
        self.schema = Schema()
        self.schema.paillier = paillier_hex()
        self.crypto = Crypto(KeyCache(master), self.schema)
        self.rewriter = Rewriter()
        self.peels: list[str] = []

    def plan(self, sql: str) -> Any:
        for _ in range(4):
            plan = self.rewriter.plan(
                sql, schema=self.schema, crypto=self.crypto, database=self.database
            )
            if not isinstance(plan, PeelFirst):
                if isinstance(plan, Execute):
                    for op in plan.ops:
                        self.schema.apply(op)
                return plan
            for peel in plan.peels:
                self.schema.apply(peel.op())
                self.peels.append(peel.describe())
        raise AssertionError("peeling did not converge")
