"""The rewriter's entry point: one statement's text -> a plan, with the query-shape cache.

    rewriter = Rewriter()                      # holds the shape cache; one per proxy process
    plan = rewriter.plan(sql, schema=schema, crypto=crypto, database="shop")

Statements that touch no table the proxy created pass through. Everything that does goes to
the rewriter of its class (HANDLERS), which refuses whatever it does not fully handle. Text
that cannot be parsed, or parses into something without a handler, is refused when it names
an encrypted table anywhere outside its literals (fail closed), else passed through.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError
from sqlglot.tokens import TokenType

from proxy.rewrite.alter import alter_table, create_index, drop_index
from proxy.rewrite.context import Crypto
from proxy.rewrite.ddl import create_table, drop_database, drop_table, dropped_database, truncate
from proxy.rewrite.derived import derived_source, plan_derived
from proxy.rewrite.errors import Unsupported
from proxy.rewrite.infoschema import mentions_infoschema, plan_infoschema, plan_table_status
from proxy.rewrite.insert import insert
from proxy.rewrite.insert_select import plan_insert_select
from proxy.rewrite.literals import Lit, Scan, scan
from proxy.rewrite.plan import (
    Derived,
    Evaluate,
    Guard,
    PeelFirst,
    Plan,
    SubqueriesFirst,
    Template,
    UnionOf,
    write_guards,
)
from proxy.rewrite.residual import checks_hold
from proxy.rewrite.resolve import Ctx
from proxy.rewrite.select import select
from proxy.rewrite.show import handles, show
from proxy.rewrite.subquery import has_subqueries
from proxy.rewrite.subquery import plan as subqueries_first
from proxy.rewrite.union import plan_union
from proxy.rewrite.update import delete, update
from proxy.schema import Schema

# sqlglot logs a statement it falls back to parsing as a Command with the statement's text,
# values and all: nothing of a client's statement may reach a log line.
logging.getLogger("sqlglot").setLevel(logging.CRITICAL + 1)

Handler = Callable[..., Template]
# DML rewriters: their templates depend on the statement's shape only, so they are cached.
HANDLERS: dict[type[exp.Expression], Handler] = {
    exp.Select: select,
    exp.Insert: insert,
    exp.Update: update,
    exp.Delete: delete,
}
CACHE_SIZE = 4096
_MYSQL = Dialect.get_or_raise("mysql")


class Rewriter:
    def __init__(self, cache_size: int = CACHE_SIZE) -> None:
        self._cache: OrderedDict[tuple[Any, ...], Template] = OrderedDict()
        self._size = cache_size
        self._mention: tuple[str, re.Pattern[str] | None] = ("", None)
        self.hits = 0
        self.misses = 0

    def plan(
        self,
        sql: str,
        *,
        schema: Schema,
        crypto: Crypto,
        database: str | None,
        current_read: bool = False,
        cache: bool = True,
    ) -> Plan:
        """The plan for one statement (raises a Refusal, a MysqlError, to send as ERR).

        cache=False: a statement the proxy wrote itself with constants in it (a subquery's
        outer statement, INSERT ... SELECT's VALUES): its shape does not come back, and a
        template of 10,000 rows is not worth keeping.

        current_read: make SELECTs on encrypted tables locking reads, which see the latest
        committed rows instead of the transaction's snapshot. Needed inside a transaction
        that began before the schema last changed: a peel committed since then is not in
        the snapshot, whose rows still hold the outer layer the plan no longer expects."""
        crypto.use_schema(schema)
        sc = scan(sql)
        key = (schema.token, database, current_read, sc.shape)
        template = self._cache.get(key)
        if template is not None and template.lit_checks and not checks_hold(
            template.lit_checks, sc.lits
        ):
            template = None  # a LIKE pattern of this statement is decided otherwise
        if template is not None and template.lit_fixed and not _fixed_hold(template, sc.lits):
            template = None  # e.g. ORDER BY another position
        if template is not None:
            self.hits += 1
            self._cache.move_to_end(key)
            return template.bind(sc.lits, crypto)
        self.misses += 1
        template, lits, cacheable = self._build(sql, sc, schema, crypto, database, current_read)
        if isinstance(template, PeelFirst | Evaluate | SubqueriesFirst | UnionOf | Derived):
            return template
        if cacheable and cache:
            self._cache[key] = template
            if len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return template.bind(lits, crypto)

    def _fail_closed(self, schema: Schema, text: str, database: str | None) -> bool:
        """Text the rewriter cannot take apart that names a table of the proxy's, or an
        information_schema table that lists them: refused, never forwarded."""
        return self._mentions(schema, text) or mentions_infoschema(schema, text, database)

    def _mentions(self, schema: Schema, text: str) -> bool:
        token, pattern = self._mention
        if token != schema.token:
            names = sorted(schema.table_names(), key=len, reverse=True)
            alt = "|".join(re.escape(n) for n in names)
            pattern = re.compile(rf"(?<![\w$@])(?:{alt})(?![\w$])", re.I) if names else None
            self._mention = (schema.token, pattern)
        return pattern is not None and pattern.search(text) is not None

    def _build(
        self,
        sql: str,
        sc: Scan,
        schema: Schema,
        crypto: Crypto,
        database: str | None,
        current_read: bool,
    ) -> tuple[
        Template | PeelFirst | Evaluate | SubqueriesFirst | UnionOf | Derived, list[Lit], bool
    ]:
        passthrough = Template(pass_through=True)
        try:
            text, replace = _replace_as_insert(sql)
            trees = [t for t in sqlglot.parse(text, read="mysql") if t]
            if replace and len(trees) == 1 and isinstance(trees[0], exp.Insert):
                trees[0].set("alternative", "REPLACE")
        except SqlglotError:
            if self._fail_closed(schema, sc.shape, database):
                raise Unsupported("a statement the rewriter cannot parse") from None
            return passthrough, sc.lits, False
        if len(trees) != 1:
            if self._fail_closed(schema, sc.shape, database):
                raise Unsupported("several statements in one query")
            return passthrough, sc.lits, not trees
        node = trees[0]
        # information_schema about the proxy's tables: answered in the proxy, never cached
        # (it depends on the backend's rows, not only on the statement).
        evaluate = plan_infoschema(node, sql, schema, database, sc.executable_comment)
        if isinstance(evaluate, Evaluate):
            return evaluate, sc.lits, False
        if evaluate is not None:  # passed through for its constants: not for its shape
            return passthrough, sc.lits, False
        status = plan_table_status(node, schema, database)
        if status is not None:
            return status, sc.lits, False
        touched = _touches(node, schema, database)
        handler = _handler(node, touched, schema)
        if isinstance(node, exp.Show | exp.Describe):
            handler = show if handles(node, Ctx(schema, database, crypto, {})) else None
        if type(node) is exp.Union and touched:  # branches combined by the proxy
            if sc.executable_comment:
                raise Unsupported("executable comments (/*! ... */)")
            ctx = Ctx(schema, database, crypto, {}, current_read=current_read, sql=sql)
            return plan_union(node, ctx), sc.lits, False
        if handler is None:
            # A parsed statement whose table references all resolve elsewhere (e.g. a plain
            # table of the same name in another database) is not ours; one sqlglot could not
            # take apart (Command) or that names no table is refused if a name appears.
            opaque = isinstance(node, exp.Command) or node.find(exp.Table) is None
            if touched or (opaque and self._fail_closed(schema, sc.shape, database)):
                raise Unsupported(f"{node.key.upper()} statements")
            return passthrough, sc.lits, True
        if sc.executable_comment:
            raise Unsupported("executable comments (/*! ... */)")
        if isinstance(node, exp.Insert) and isinstance(node.expression, exp.Select | exp.Union):
            ctx = Ctx(schema, database, crypto, {}, current_read=current_read, sql=sql)
            return plan_insert_select(node, ctx), sc.lits, False  # the SELECT decided first
        if isinstance(node, exp.Select) and derived_source(node) is not None:
            # the inner SELECT runs first, the outer query is evaluated on its rows here
            ctx = Ctx(schema, database, crypto, {}, current_read=current_read, sql=sql)
            return plan_derived(node, ctx), sc.lits, False
        if has_subqueries(node):  # decided by the proxy first (proxy.rewrite.subquery)
            ctx = Ctx(schema, database, crypto, {}, current_read=current_read, sql=sql)
            return subqueries_first(node, ctx), sc.lits, False
        lit_index, lits, mapped = _map_literals(node, sc)
        ctx = Ctx(schema, database, crypto, lit_index, current_read=current_read, sql=sql)
        template = handler(node, ctx=ctx)
        if ctx.peels:
            return PeelFirst(list(ctx.peels)), lits, False
        template.guards = _guards(template)
        template.lit_checks = tuple(dict.fromkeys(ctx.checks))
        template.lit_fixed = tuple(ctx.fixed)
        cacheable = mapped and type(node) in HANDLERS and ctx.used == set(lit_index.values())
        return template, lits, cacheable


def _guards(template: Template) -> tuple[Guard, ...]:
    """The RND-layer onions a write stores (proxy.rewrite.plan.write_guards)."""
    segments = list(template.segments or [])
    rmw = template.rmw  # update.RmwSpec or residual.ResidualWrite
    return write_guards(segments) if rmw is None else tuple(rmw.write_guards())


def _replace_as_insert(sql: str) -> tuple[str, bool]:
    """(text to parse, whether it is a REPLACE). sqlglot's MySQL tokenizer takes REPLACE for
    a command and the rest of the statement for one string. REPLACE INTO has INSERT INTO's
    syntax: parse it as that, with the keyword overwritten in place ("INSERT " has REPLACE's
    length, so every other token, and every literal the shape cache located, keeps its
    offset)."""
    if sql.lstrip()[:7].upper() != "REPLACE":
        return sql, False
    try:
        first = _MYSQL.tokenize(sql)[0]
    except (SqlglotError, IndexError):
        return sql, False
    if first.token_type != TokenType.REPLACE:
        return sql, False
    return sql[: first.start] + "INSERT " + sql[first.start + len("REPLACE") :], True


def _touches(node: exp.Expression, schema: Schema, database: str | None) -> bool:
    for t in node.find_all(exp.Table):
        db = t.args.get("db")
        if schema.table(db.name if db is not None else database, t.name) is not None:
            return True
    return False


# Other statements on tables the proxy created; CREATE TABLE is always handled (new tables
# are encrypted by default), DROP DATABASE when the schema knows the database.
DDL: dict[tuple[type[exp.Expression], str], Handler] = {
    (exp.Drop, "TABLE"): drop_table,
    (exp.Drop, "INDEX"): drop_index,
    (exp.Create, "INDEX"): create_index,
    (exp.Alter, "TABLE"): alter_table,
    (exp.TruncateTable, ""): truncate,
}


def _handler(node: exp.Expression, touched: bool, schema: Schema) -> Handler | None:
    kind = (
        str(node.args.get("kind") or "").upper() if not isinstance(node, exp.TruncateTable) else ""
    )
    if isinstance(node, exp.Create) and kind == "TABLE":
        return create_table
    if isinstance(node, exp.Drop) and kind == "DATABASE":
        return drop_database if schema.database(dropped_database(node)) is not None else None
    if not touched:
        return None
    return HANDLERS.get(type(node)) or DDL.get((type(node), kind))


def _map_literals(node: exp.Expression, sc: Scan) -> tuple[dict[int, int], list[Lit], bool]:
    """Literal nodes -> indexes into the scanner's literals (text order), so a template made
    from this statement binds to any statement of the same shape. When the two disagree
    (a literal without a position, an escape the scanner reads differently), the tree's own
    literals are used and the template is not cached."""
    by_start = {lit.start: i for i, lit in enumerate(sc.lits)}
    index: dict[int, int] = {}
    nodes = list(node.find_all(exp.Literal))
    for n in nodes:
        i = by_start.get(n.meta.get("start", -1)) if n.meta else None
        if i is None or sc.lits[i].value != n.this or sc.lits[i].is_string != n.is_string:
            break
        index[id(n)] = i
    else:
        if len(index) == len(sc.lits):
            return index, sc.lits, True
    lits = [Lit(n.this, n.is_string, _requote(n), -1) for n in nodes]
    return {id(n): i for i, n in enumerate(nodes)}, lits, False


def _requote(n: exp.Literal) -> str:
    if not n.is_string:
        return n.this
    return "'" + n.this.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fixed_hold(template: Template, lits: Sequence[Lit]) -> bool:
    return all(i < len(lits) and lits[i].value == v for i, v in template.lit_fixed)
