"""Shared analysis for the rewriters: the planning context, table and column resolution,
constants, and which onion layer an operation needs (with the peel it implies).

Capabilities are data: NEEDS maps an operation to the (onion, layer) that serves it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlglot import exp

from onion.encoding import Kind
from proxy.rewrite.context import Crypto
from proxy.rewrite.errors import PolicyRefusal, UnknownColumn, UnknownTable, Unsupported
from proxy.rewrite.plan import ColRef, Peel, quote_ident
from proxy.schema import LAYERS, Column, Database, Schema, Table

# operation -> the onion layers that can serve it, in order of preference
NEEDS: dict[str, tuple[tuple[str, str], ...]] = {
    "equality": (("eq", "det"), ("ord", "ope")),
    "order": (("ord", "ope"),),
    "grouping": (("eq", "det"),),
    "sum": (("add", "hom"),),
    "word search": (("search", "search"),),
}


@dataclass
class Ctx:
    """What every rewriter receives: declared as keyword arguments, like sqlglot's rules."""

    schema: Schema
    database: str | None
    crypto: Crypto
    lit_index: dict[int, int]  # id(exp.Literal) -> index into the statement's literals
    peels: list[Peel] = field(default_factory=list)
    used: set[int] = field(default_factory=set)  # literal indexes bound through slots
    current_read: bool = False  # SELECTs read the latest rows (LOCK IN SHARE MODE)
    sql: str = ""  # the statement as written, if given: result column names are taken from it
    # (literal index, is a '%word%' pattern): LIKE decisions the shape cache must re-check
    checks: list[tuple[int, bool]] = field(default_factory=list)
    # (literal index, its text): literals the plan is made for (`ORDER BY 2`); a statement
    # of the same shape with other values there is planned again
    fixed: list[tuple[int, str]] = field(default_factory=list)

    def lit(self, node: exp.Expression) -> int:
        try:
            i = self.lit_index[id(node)]
        except KeyError:
            raise Unsupported("this kind of constant") from None
        self.used.add(i)
        return i

    def fix(self, node: exp.Literal) -> None:
        self.fixed.append((self.lit(node), node.this))


@dataclass
class Source:
    """One table of a FROM clause."""

    alias: str  # how the statement names it
    db: Database
    table: Table
    qualifier: str | None = None  # backend alias when several tables are joined

    def ref(self, col: Column) -> ColRef:
        return (self.db.id, self.table.id, col)

    def col(self, name: str) -> str:
        q = quote_ident(name)
        return f"{self.qualifier}.{q}" if self.qualifier else q


def resolve_table(node: exp.Table, ctx: Ctx) -> tuple[Database, Table]:
    db_name = node.args.get("db")
    database = db_name.name if db_name is not None else ctx.database
    if node.args.get("catalog") is not None or database is None:
        raise Unsupported("this table reference")
    db = ctx.schema.database(database)
    table = db.tables.get(node.name) if db is not None else None
    if db is None or table is None:
        raise UnknownTable(f"{database}.{node.name}")
    return db, table


def backend_table(db: Database, table: Table, ctx: Ctx) -> str:
    t = quote_ident(table.backend_name)
    return t if db.name == ctx.database else f"{quote_ident(db.name)}.{t}"


class Scope:
    def __init__(self, sources: Sequence[Source]) -> None:
        self.sources = list(sources)

    def column(self, node: exp.Column, where: str) -> tuple[Source, Column]:
        if not isinstance(node.this, exp.Identifier):
            raise Unsupported("this column reference")
        qual = node.table
        if node.args.get("db") is not None:
            raise Unsupported("database-qualified columns")
        found: list[tuple[Source, Column]] = []
        for src in self.sources:
            if qual and qual != src.alias:
                continue
            col = src.table.column(node.name)
            if col is not None:
                found.append((src, col))
        if len(found) != 1:
            if found:
                raise Unsupported(f"ambiguous column {node.name}")
            raise UnknownColumn(f"{qual + '.' if qual else ''}{node.name}", where)
        return found[0]


def need(ctx: Ctx, src: Source, col: Column, operation: str) -> tuple[str, str]:
    """The (onion, layer) serving `operation` on an encrypted column; records the peel it
    needs, or refuses (no such onion, or the policy minimum forbids the layer)."""
    options = NEEDS[operation]
    if operation == "equality" and col.kind == Kind.STRING:
        options = options[:1]  # OPE of text orders by an 8-byte prefix: not equality
    if operation == "order" and col.kind == Kind.STRING:
        raise Unsupported(
            f"range comparison on encrypted text column {src.table.name}.{col.name} (the proxy"
            " evaluates it only as a top-level AND condition of a SELECT's WHERE, on a"
            " utf8mb4_bin column)"
        )
    present = [(o, layer) for o, layer in options if o in col.onions]
    if not present:
        onions = ",".join(col.onions)
        raise PolicyRefusal(src.table.name, col.name, operation, f"onions={onions}")
    allowed = [(o, layer) for o, layer in present if col.allows(o, layer)]
    if not allowed:
        raise PolicyRefusal(src.table.name, col.name, operation, f"min={col.min_level}")
    # Prefer an onion already at the layer (no peel), else the first allowed one.
    for o, layer in allowed:
        if col.onions[o] == layer:
            return o, layer
    onion, layer = allowed[0]
    current = col.onions[onion]
    if LAYERS[onion].index(current) < LAYERS[onion].index(layer):
        peel = Peel(
            src.db.name,
            src.table.name,
            col.name,
            onion,
            current,
            layer,
            src.db.id,
            src.table.id,
            col,
            src.table.backend_name,
        )
        if peel not in ctx.peels:
            ctx.peels.append(peel)
    return onion, layer


def constant(node: exp.Expression, ctx: Ctx) -> tuple[int, bool] | None:
    """(literal index, negated) for a literal or a negated literal, else None."""
    neg = False
    while True:
        if isinstance(node, exp.Paren):
            node = node.this
        elif isinstance(node, exp.Neg):
            neg = not neg
            node = node.this
        else:
            break
    if isinstance(node, exp.Literal):
        return ctx.lit(node), neg
    return None


def is_null(node: exp.Expression) -> bool:
    while isinstance(node, exp.Paren):
        node = node.this
    return isinstance(node, exp.Null)


def is_default(node: exp.Expression) -> bool:
    """The DEFAULT keyword (a Var in VALUES, an unquoted column name in SET)."""
    if isinstance(node, exp.Var):
        return node.name.upper() == "DEFAULT"
    return (
        isinstance(node, exp.Column)
        and not node.table
        and isinstance(node.this, exp.Identifier)
        and not node.this.quoted
        and node.name.upper() == "DEFAULT"
    )
