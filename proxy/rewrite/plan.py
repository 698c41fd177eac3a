"""Plans: what the session does with one statement, and the templates they are bound from.

A rewriter builds a `Template` from the AST: backend SQL as text segments and slots. A slot
is filled at bind time from the statement's literals (`Lit`, in text order): a literal as the
client wrote it (plain columns, LIMIT), or a value encrypted for one column and layer
(rendered as a hex literal X'..', so no escaping is involved), or a fresh row IV. Binding the
same template to the literals of another statement of the same shape skips parsing and
planning (proxy.rewrite.cache). IVs are drawn at bind time, never cached.

The plan kinds the session executes:

    PassThrough()            forward the client's bytes unchanged (no encrypted table)
    Execute(sql, decoder, ops)
                             send `sql` (None: nothing to send, answer OK); decode the result
                             set with `decoder` if not None; after success apply `ops` to the
                             schema and save the metadata (DDL)
    PeelFirst(peels)         run each peel's `sql(crypto)`, record `op()`, then plan again
    ReadModifyWrite(select_sql, finish)
                             in one transaction: run select_sql (it locks the rows), then the
                             UPDATE `finish(rows)` returns (None: no row matched)
    Evaluate(fetch, finish)  run each `fetch` query (plain SQL on information_schema), then
                             answer with `finish([(definitions, rows), ...])`, a decoder
                             holding the result rows (the query is evaluated in the proxy)
    SubqueriesFirst(inner, outer, write)
                             run each plaintext statement of `inner` through the normal path,
                             keeping its decrypted rows; then plan and run `outer(rows)`, the
                             statement with the subqueries replaced by constants
                             (proxy.rewrite.subquery); write: UPDATE / DELETE, inner reads
                             locked and everything in one transaction
    Derived(inner, finish)   run each SELECT of `inner` as a statement (decoded, kept); send the
                             result `finish(results)` makes: the outer query over a derived
                             table evaluated here (proxy.rewrite.derived)
    UnionOf(branches, combine)
                             run each SELECT of `branches` as a statement (decoded, kept);
                             send the result set `combine(results)` returns: the UNION's rows
                             combined, deduplicated, sorted and cut here (proxy.rewrite.union)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from proxy.protocol.codec import ColumnDefinition
from proxy.rewrite.context import Crypto
from proxy.rewrite.decode import Decoder, DecoderSpec
from proxy.rewrite.literals import Lit, column_value
from proxy.schema import Column

ColRef = tuple[int, int, Column]  # (database id, table id, column)
# An onion a write stores at RND, assuming it is still there: (database id, table id,
# column id, onion). The session holds its row of the layers table while the write runs.
Guard = tuple[int, int, int, str]


def hexlit(data: bytes) -> str:
    return "X'" + data.hex() + "'"


def quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class Binder:
    """Per-execution state: the literals, the keys, and the IVs drawn so far."""

    __slots__ = ("lits", "crypto", "_ivs")

    def __init__(self, lits: Sequence[Lit], crypto: Crypto) -> None:
        self.lits = lits
        self.crypto = crypto
        self._ivs: dict[object, bytes] = {}

    def iv(self, key: object) -> bytes:
        iv = self._ivs.get(key)
        if iv is None:
            from onion import new_iv

            iv = self._ivs[key] = new_iv()
        return iv

    def render(self, segments: Sequence[Segment]) -> str:
        return "".join(s if type(s) is str else s.render(self) for s in segments)  # type: ignore[union-attr]


class Slot:
    __slots__ = ()

    def render(self, b: Binder) -> str:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class RawLit(Slot):
    """A literal for a plain column or a LIMIT, exactly as the client wrote it."""

    index: int
    negate: bool = False

    def render(self, b: Binder) -> str:
        return ("-" if self.negate else "") + b.lits[self.index].raw


@dataclass(frozen=True, slots=True)
class Enc(Slot):
    """A value encrypted for one column and layer.

    how: det | ope | eq | ord (need iv_key) | hom | search | hom_const | token."""

    ref: ColRef
    how: str
    index: int | None = None  # literal index; None: `fixed` is the value
    negate: bool = False
    store: bool = False
    fixed: Any = None
    iv_key: object = None

    def value(self, b: Binder) -> Any:
        if self.index is None:
            return self.fixed
        return column_value(self.ref[2], b.lits[self.index], self.negate, store=self.store)

    def render(self, b: Binder) -> str:
        cc = b.crypto.column(*self.ref)
        how = self.how
        if how == "token":
            return hexlit(cc.search_token(search_word(self.ref[2], b.lits[self.index or 0])))
        v = self.value(b)
        if v is None:
            return "NULL"
        if how == "det":
            ct = cc.det(v)
        elif how == "ope":
            ct = cc.ope(v)
        elif how == "eq":
            ct = cc.eq(v, b.iv(self.iv_key))
        elif how == "ord":
            ct = cc.ord(v, b.iv(self.iv_key))
        elif how == "hom":
            ct = cc.hom(v)
        elif how == "search":
            ct = cc.search(v)
        elif how == "hom_const":
            ct = cc.hom_constant(v)
        else:
            raise ValueError(how)
        return hexlit(ct)


@dataclass(frozen=True, slots=True)
class IvSlot(Slot):
    key: object

    def render(self, b: Binder) -> str:
        return hexlit(b.iv(self.key))


Segment = str | Slot


def search_word(col: Column, lit: Lit) -> str:
    """The one word of a LIKE '%word%' pattern (refused unless it is exactly one word)."""
    from onion.search import normalize_words
    from proxy.rewrite.errors import bad_constant

    pattern = lit.value
    inner = pattern[1:-1] if len(pattern) > 2 and pattern[0] == pattern[-1] == "%" else ""
    words = normalize_words(inner) if inner and not any(ch in inner for ch in "%_\\") else []
    if len(words) != 1 or not re.fullmatch(r"[^\W_]+", inner):
        raise bad_constant(col.name, "LIKE on an encrypted column takes '%word%' with one word")
    return inner


# ---- peels ----------------------------------------------------------------------------------


LAYERS_TABLE = "_cryptdb_layers"


@dataclass(frozen=True)
class Peel:
    """Lower one onion of one column by one layer, in place, with cryptdb_rnd_decrypt.

    Decrypting twice would destroy the column (CTR applied twice is an encryption), so a peel
    must happen exactly once, even with several proxies and crashes. The backend keeps each
    onion's layer in a small table in the same database, written in the peel's transaction:

        on a connection of its own (never the client's: its transaction could roll back):
        for sql in peel.setup_sql(): execute(sql)           # autocommit; idempotent
        BEGIN
        layer = execute(peel.lock_sql())                     # row lock: peels serialize
        if layer == peel.from_layer:
            execute(peel.sql(crypto)); execute(peel.record_sql())
        COMMIT
        if layer in (peel.from_layer, peel.to_layer):
            schema.apply(peel.op()); save the metadata (MetadataConflict: reload, re-plan)
            audit log: who, when, peel.describe()

    The layers table reveals only ids and layers: what the server saw happen anyway.
    """

    database: str
    table: str
    column: str
    onion: str
    from_layer: str
    to_layer: str
    database_id: int
    table_id: int
    col: Column = field(repr=False, compare=False)
    backend_table: str = ""

    def sql(self, crypto: Crypto) -> str:
        key = crypto.rnd_key(self.database_id, self.table_id, self.col, self.onion)
        c = quote_ident(self.col.onion_name(self.onion))
        iv = quote_ident(self.col.iv_name)
        return (
            f"UPDATE {quote_ident(self.database)}.{quote_ident(self.backend_table)} "
            f"SET {c} = cryptdb_rnd_decrypt({c}, {hexlit(key)}, {iv})"
        )

    def setup_sql(self) -> list[str]:
        return layer_setup_sql(
            self.database, self.table_id, self.col.id, self.onion, self.from_layer
        )

    def lock_sql(self) -> str:
        """One row, one column: the onion's layer on the backend, locked until COMMIT."""
        where = _layer_where(self.table_id, self.col.id, self.onion)
        return f"SELECT layer FROM {_layers(self.database)} WHERE {where} FOR UPDATE"

    def record_sql(self) -> str:
        where = _layer_where(self.table_id, self.col.id, self.onion)
        return f"UPDATE {_layers(self.database)} SET layer = '{self.to_layer}' WHERE {where}"

    def op(self) -> dict[str, Any]:
        return {
            "op": "set_layer",
            "database": self.database,
            "table": self.table,
            "column": self.column,
            "onion": self.onion,
            "from": self.from_layer,
            "to": self.to_layer,
        }

    def describe(self) -> str:
        return (
            f"{self.database}.{self.table}.{self.column} {self.onion}: "
            f"{self.from_layer.upper()} -> {self.to_layer.upper()}"
        )


def _layers(database: str) -> str:
    return f"{quote_ident(database)}.{quote_ident(LAYERS_TABLE)}"


def _layer_where(table_id: int, column_id: int, onion: str) -> str:
    return f"table_id = {table_id} AND column_id = {column_id} AND onion = '{onion}'"


def layer_setup_sql(
    database: str, table_id: int, column_id: int, onion: str, layer: str = "rnd"
) -> list[str]:
    """The layers table and one onion's row at its outer layer (autocommit; idempotent)."""
    return [
        f"CREATE TABLE IF NOT EXISTS {_layers(database)} (table_id BIGINT UNSIGNED NOT NULL, "
        "column_id BIGINT UNSIGNED NOT NULL, onion VARCHAR(8) NOT NULL, "
        "layer VARCHAR(8) NOT NULL, PRIMARY KEY (table_id, column_id, onion)) ENGINE=InnoDB",
        f"INSERT IGNORE INTO {_layers(database)} VALUES "
        f"({table_id}, {column_id}, '{onion}', '{layer}')",
    ]


def hold_layers_sql(database: str, guards: Sequence[Guard], lock: bool = True) -> str:
    """The guarded onions' layers, share-locked until the write's transaction ends: a peel
    (which takes the row FOR UPDATE) cannot commit between this read and the write. Point
    lookups on the whole primary key, so InnoDB locks those records and no gaps.
    lock=False: a consistent read, which waits for nobody."""
    where = " OR ".join(f"({_layer_where(t, c, o)})" for _, t, c, o in guards)
    return (
        f"SELECT table_id, column_id, onion, layer FROM {_layers(database)} "
        f"WHERE {where}" + (" LOCK IN SHARE MODE" if lock else "")
    )


def write_guards(segments: Sequence[Segment]) -> tuple[Guard, ...]:
    """The onions a write stores at RND (Enc slots 'eq' / 'ord' draw an IV: RND layer)."""
    seen: dict[Guard, None] = {}
    for s in segments:
        if type(s) is Enc and s.how in ("eq", "ord"):
            seen[(s.ref[0], s.ref[1], s.ref[2].id, s.how)] = None
    return tuple(seen)


# A Paillier decryption costs ~3 ms, decrypting an Eq value ~2 us: an ungrouped SUM / AVG
# over at most this many rows is computed in the proxy (proxy.rewrite.select).
SMALL_ROWS = 500


# ---- plans ----------------------------------------------------------------------------------


@dataclass
class PassThrough:
    pass


@dataclass
class Execute:
    sql: str | None
    decoder: Decoder | None = None
    ops: list[dict[str, Any]] = field(default_factory=list)
    guards: tuple[Guard, ...] = ()  # a write: hold these onions at RND while it runs
    # First try: (sql, decoder, most rows): when `sql` returns at most that many rows, the
    # decoder makes the answer from them; otherwise `sql` above runs (SUM / AVG: few rows
    # are cheaper to decrypt here than one Paillier sum).
    small: tuple[str, Decoder, int] | None = None


@dataclass
class PeelFirst:
    peels: list[Peel]


@dataclass
class ReadModifyWrite:
    select_sql: str
    finish: Callable[[Sequence[Sequence[Any]]], str | None]
    guards: tuple[Guard, ...] = ()


# One fetch query's result: its column definitions (parsed) and its text-protocol rows.
Fetched = tuple[list[ColumnDefinition], list[Sequence[Any]]]


@dataclass
class Evaluate:
    """A query answered by the proxy from rows it fetched: information_schema about
    encrypted tables (proxy.rewrite.infoschema). The fetch queries carry no plaintext name;
    `finish` may raise a Refusal (a query it cannot evaluate)."""

    fetch: list[str]
    finish: Callable[[Sequence[Fetched]], Any]  # -> a decoder with its rows (decode([]))


@dataclass
class SubqueriesFirst:
    inner: list[str]  # plaintext SELECTs, run in order
    outer: Callable[[list[list[tuple[Any, ...]]]], str]  # their rows -> plaintext statement
    write: bool = False  # UPDATE / DELETE: one transaction, inner reads LOCK IN SHARE MODE
    # the outer statement's plan and the inner (decoder, rows) -> the plan to carry out
    # (subqueries in the select list: their values added to each decoded row)
    finish: Callable[[Plan, list[tuple[Decoder | None, list[tuple[Any, ...]]]]], Plan] | None = None

    def finished(
        self, outer: Plan, results: list[tuple[Decoder | None, list[tuple[Any, ...]]]]
    ) -> Plan:
        return outer if self.finish is None else self.finish(outer, results)


@dataclass
class Derived:
    """A SELECT over a derived table (proxy.rewrite.derived): run each plaintext SELECT of
    `inner` as a statement (decoded, kept); `finish` evaluates the outer query over their
    rows and returns the decoder and rows of the answer."""

    inner: list[str]
    finish: Callable[
        [list[tuple[Decoder | None, list[tuple[Any, ...]]]]], tuple[Decoder, list[Any]]
    ]


@dataclass
class UnionOf:
    branches: list[str]  # plaintext SELECTs, each planned and run as a statement of its own
    # each branch's decoder and decoded rows -> the result's decoder and rows, for the client
    combine: Callable[[list[tuple[Decoder, list[tuple[Any, ...]]]]], tuple[Decoder, list[Any]]]


Plan = (
    PassThrough
    | Execute
    | PeelFirst
    | ReadModifyWrite
    | Evaluate
    | SubqueriesFirst
    | UnionOf
    | Derived
)


@dataclass
class Template:
    """A plan with its literals still open: `bind` makes the plan for one statement."""

    segments: list[Segment] | None = None
    decoder: DecoderSpec | None = None
    ops: list[dict[str, Any]] = field(default_factory=list)
    rmw: Any = None  # proxy.rewrite.update.RmwSpec
    pass_through: bool = False
    guards: tuple[Guard, ...] = ()
    small: list[Segment] | None = None
    small_decoder: DecoderSpec | None = None
    # LIKE patterns decided by their value (Search onion or proxy.rewrite.residual): a
    # statement of the same shape whose patterns decide otherwise is planned again
    lit_checks: tuple[tuple[int, bool], ...] = ()
    lit_fixed: tuple[tuple[int, str], ...] = ()  # literals the template was made for (Ctx.fixed)

    def bind(self, lits: Sequence[Lit], crypto: Crypto) -> Plan:
        if self.pass_through:
            return PassThrough()
        b = Binder(lits, crypto)
        if self.rmw is not None:
            plan = self.rmw.bind(b)
            plan.guards = self.guards
            return plan
        sql = b.render(self.segments) if self.segments is not None else None
        decoder = self.decoder.bind(crypto, lits) if self.decoder is not None else None
        small = None
        if self.small is not None and self.small_decoder is not None:
            small = (b.render(self.small), self.small_decoder.bind(crypto, lits), SMALL_ROWS)
        return Execute(sql, decoder, list(self.ops), self.guards, small)
