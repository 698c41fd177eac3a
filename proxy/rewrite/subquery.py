"""Uncorrelated subqueries, decided by the proxy before the statement that contains them.

The backend cannot evaluate `x IN (SELECT y ...)` on encrypted columns: x and y are under
different keys (and y's values may be RND). So the proxy runs each subquery as a statement
of its own, decrypts its rows, and writes them into the outer statement as constants, which
the ordinary rewrite then encrypts for the column they are compared with:

    x [NOT] IN (SELECT y ...)   x [NOT] IN (v1, v2, ...)   distinct values, at most
                                MAX_IN_VALUES; no rows: FALSE (NOT IN: TRUE), as MariaDB
    x <op> (SELECT y ...)       x <op> v    no rows: NULL; more than one: error 1242
    [NOT] EXISTS (SELECT ...)   TRUE / FALSE (the subquery runs with LIMIT 1)
    x <op> ANY / ALL (SELECT y) comparisons with the values, as SQL defines them
    UPDATE ... SET c = (SELECT y ...)   c = v, as the scalar case
    SELECT ..., (SELECT y ...), ...     the value added to each decoded row by the proxy
                                        (ConstantColumns): the server never sees it

in the WHERE clause of SELECT, UPDATE and DELETE (and SET of UPDATE). The plan is
`SubqueriesFirst(inner, outer, write)` (proxy.rewrite.plan); subqueries may nest (an inner
statement is planned like any other). Refused with 1235: correlated subqueries (they name a
column of the outer statement), inside select-list expressions, or anywhere else. (A
SELECT over a derived table is proxy.rewrite.derived's; as a subquery it is an inner
statement like any other.)

Fail closed: a value decrypted from an encrypted column must reach the backend encrypted
again. It is only substituted where it is compared with (or assigned to) an encrypted
column, whose onions the rewrite encrypts it for; compared with a plain column, or with
anything but a column, it would travel in plaintext: refused. COUNT results are not
column values (the server computed them).

Not cached: the plan holds the statement's tree, and the outer statement's text depends on
the rows. The inner and outer statements are ordinary statements, planned (and cached) as
such.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

from sqlglot import exp

from onion.encoding import Kind
from proxy.protocol.errors import MysqlError
from proxy.rewrite.decode import (
    BINARY_FLAG,
    NOT_FIXED_DEC,
    T_BLOB,
    UNSIGNED_FLAG,
    Decoder,
    OutCol,
)
from proxy.rewrite.derived import derived_source, passes_rows
from proxy.rewrite.errors import ER_NOT_SUPPORTED_YET, UnknownColumn, Unsupported
from proxy.rewrite.plan import Execute, SubqueriesFirst
from proxy.rewrite.predicate import COMPARISONS, FLIP
from proxy.rewrite.resolve import Ctx
from proxy.rewrite.semijoin import decorrelate
from proxy.rewrite.subquery_values import NUMBERS, exact, inexact, literal, quantified
from proxy.schema import Column, Table

MAX_IN_VALUES = 10_000
_COMPARE = tuple(COMPARISONS)
_SUBQUERY = (exp.Subquery, exp.Exists, exp.Any, exp.All)

# MySQL column types whose text-protocol values are numbers (include/mysql_com.h).
_NUMERIC_TYPES = frozenset({0, 1, 2, 3, 4, 5, 8, 9, 13, 246})
_BINARY_CHARSET = 63


def has_subqueries(node: exp.Expression) -> bool:
    return next(node.find_all(*_SUBQUERY), None) is not None


def _top_level(node: exp.Expression) -> list[exp.Expression]:
    """The subqueries of `node` itself, in tree order (nested ones belong to their inner
    statement, which is planned on its own)."""
    out: list[exp.Expression] = []

    def walk(e: exp.Expression) -> None:
        for child in e.iter_expressions():
            if isinstance(child, _SUBQUERY):
                out.append(child)
            else:
                walk(child)

    walk(node)
    return out


def _unparen_up(e: exp.Expression) -> tuple[exp.Expression, exp.Expression | None]:
    """(the outermost Paren around e, or e; its parent)."""
    while isinstance(e.parent, exp.Paren):
        e = e.parent
    return e, e.parent


def _unparen(e: exp.Expression) -> exp.Expression:
    while isinstance(e, exp.Paren):
        e = e.this
    return e


class _Use:
    """One subquery: how its rows are substituted."""

    def __init__(self, kind: str, target: exp.Column | None, op: str = "") -> None:
        self.kind = kind  # in | scalar | exists | any | all | item (in the select list)
        self.target = target
        self.op = op  # scalar comparisons: `target <op> value` (flipped if written the other way)
        self.col: Column | None = None  # the target, when an encrypted number


def _classify(sq: exp.Expression, node: exp.Expression) -> _Use:
    if isinstance(sq, exp.Exists):
        if not _constant_select(sq, node):
            _in_where(sq, node, "EXISTS")
        return _Use("exists", None)
    top, parent = _unparen_up(sq)
    if isinstance(sq, exp.Any | exp.All):  # x <op> ANY / SOME / ALL (SELECT ...)
        if not isinstance(parent, _COMPARE) or parent.this is top:
            raise Unsupported("ANY / ALL / SOME in this position")
        _in_where(sq, node, "ANY / ALL / SOME")
        kind = "any" if isinstance(sq, exp.Any) else "all"
        return _Use(kind, _target(parent.this), COMPARISONS[type(parent)])
    if isinstance(parent, exp.From | exp.Join):
        raise Unsupported("subqueries in FROM (derived tables)")
    if isinstance(parent, exp.Any | exp.All):
        raise Unsupported("ANY / ALL / SOME with a subquery")
    if isinstance(parent, exp.In) and parent.args.get("query") is sq:
        _in_where(sq, node, "IN (SELECT ...)")
        return _Use("in", _target(parent.this))
    if isinstance(parent, _COMPARE):
        other = parent.expression if parent.this is top else parent.this
        if isinstance(node, exp.Update) and parent.parent is node:
            return _Use("scalar", _target(other))  # SET c = (SELECT ...)
        _in_where(sq, node, "a scalar subquery")
        op = COMPARISONS[type(parent)]
        return _Use("scalar", _target(other), FLIP[op] if parent.this is top else op)
    if isinstance(node, exp.Select) and isinstance(sq, exp.Subquery):
        item = sq.parent if isinstance(sq.parent, exp.Alias) else sq
        if item.parent is node and item.arg_key == "expressions":
            return _Use("item", None)  # added to each row by the proxy, never sent
    if isinstance(node, exp.Select) and _in_select_list(sq, node):
        raise Unsupported("subqueries in expressions of the select list")
    raise Unsupported("a subquery in this position")


def _constant_select(sq: exp.Expression, node: exp.Expression) -> bool:
    """`SELECT [NOT] EXISTS (...) [AS a]`, no FROM (SQLAlchemy's select(exists())): the
    statement becomes `SELECT TRUE / FALSE`, which MariaDB describes as it describes the
    EXISTS (INT(1), NOT NULL); the server chose the inner rows, so it knows the answer."""
    if not isinstance(node, exp.Select) or node.args.get("from_") is not None:
        return False
    return _in_select_list(sq, node)


def _in_select_list(sq: exp.Expression, node: exp.Select) -> bool:
    e: exp.Expression | None = sq
    while e is not None and e.parent is not node:
        e = e.parent
    return e is not None and e.arg_key == "expressions"


def _in_where(sq: exp.Expression, node: exp.Expression, what: str) -> None:
    where = node.args.get("where")
    e: exp.Expression | None = sq
    while e is not None and e is not where:
        e = e.parent
    if e is None:
        raise Unsupported(f"{what} outside the WHERE clause")


def _target(e: exp.Expression) -> exp.Column:
    e = _unparen(e)
    if not isinstance(e, exp.Column) or not isinstance(e.this, exp.Identifier):
        raise Unsupported("a subquery compared with anything but a column")
    return e


# ---- tables, columns and where values come from ---------------------------------------------


def _tables(node: exp.Expression, ctx: Ctx) -> list[tuple[str, Table | None]]:
    """(alias, schema table or None for a table the proxy did not create) of every table
    reference in `node`, nested subqueries included."""
    out: list[tuple[str, Table | None]] = []
    for t in node.find_all(exp.Table):
        db = t.args.get("db")
        out.append((t.alias_or_name, ctx.schema.table(db.name if db else ctx.database, t.name)))
    return out


def _outer_tables(node: exp.Expression, ctx: Ctx) -> list[tuple[str, Table | None]]:
    refs: list[exp.Expression] = []
    if isinstance(node, exp.Select):
        from_ = node.args.get("from_")
        if from_ is not None:
            refs.append(from_.this)
        refs += [j.this for j in node.args.get("joins") or []]
    else:
        refs.append(node.this)
    out = []
    for t in refs:
        if isinstance(t, exp.Table):
            db = t.args.get("db")
            table = ctx.schema.table(db.name if db else ctx.database, t.name)
            out.append((t.alias_or_name, table))
    return out


def _aliases(node: exp.Expression) -> set[str]:
    """Select-list aliases anywhere in `node` (ORDER BY may name them)."""
    return {a.alias.lower() for a in node.find_all(exp.Alias)}


def _check_uncorrelated(
    inner: exp.Expression, outer: list[tuple[str, Table | None]], ctx: Ctx
) -> None:
    """Refuse a subquery that names a column of the outer statement. Provable cases only;
    a name that resolves nowhere is left to the inner statement's planning (1054)."""
    tables = _tables(inner, ctx)
    names = {alias for alias, _ in tables}
    all_known = all(t is not None for _, t in tables)
    aliases = _aliases(inner)
    outer_names = {alias for alias, _ in outer}
    for col in inner.find_all(exp.Column):
        if not isinstance(col.this, exp.Identifier):
            continue
        qual = col.table
        if qual:
            if qual not in names and qual in outer_names:
                raise Unsupported(f"correlated subqueries (column {qual}.{col.name})")
            continue
        if not all_known or col.name.lower() in aliases:
            continue
        if any(t is not None and t.column(col.name) for _, t in tables):
            continue
        if any(t is not None and t.column(col.name) for _, t in outer):
            raise Unsupported(f"correlated subqueries (column {col.name})")


def _sensitive(inner: exp.Expression, ctx: Ctx) -> str | None:
    """Where an inner statement's values may come from an encrypted column: its name
    (table.column, or the table for *), else None. Fail closed: a name that resolves to no
    column of the proxy's tables counts as encrypted when every table is the proxy's."""
    selects = [inner] if isinstance(inner, exp.Select) else list(inner.find_all(exp.Select))
    for sel in selects:
        through = derived_source(sel)
        if through is not None and passes_rows(sel):  # the derived table's own values
            found = _sensitive(through.this, ctx)
            if found is not None:
                return found
            continue
        tables = [(a, t) for a, t in _tables(sel, ctx)]
        if all(t is None for _, t in tables):
            continue
        all_known = all(t is not None for _, t in tables)
        for item in sel.expressions:
            item = item.this if isinstance(item, exp.Alias) else item
            if isinstance(item, exp.Count):
                continue  # a number of rows, which the server counted itself
            if isinstance(item, exp.Star) or (
                isinstance(item, exp.Column) and isinstance(item.this, exp.Star)
            ):
                for _, t in tables:
                    if t is not None and any(not c.plain for c in t.columns):
                        return t.name
                continue
            for col in item.find_all(exp.Column):
                found = [
                    (t, c)
                    for a, t in tables
                    if t is not None
                    and (not col.table or col.table == a)
                    and (c := t.column(col.name)) is not None
                ]
                if any(not c.plain for _, c in found):
                    t, c = next((t, c) for t, c in found if not c.plain)
                    return f"{t.name}.{c.name}"
                if not found and all_known:
                    return col.name
    return None


_PROXY_FILTERS = (exp.LT, exp.LTE, exp.GT, exp.GTE, exp.Between, exp.Like)


def _selected_in_proxy(inner: exp.Expression, ctx: Ctx) -> str | None:
    """What makes the proxy, not the server, decide which rows an inner statement yields:
    HAVING, a range / LIKE pattern on encrypted text (proxy.rewrite.residual), the outer
    query over a derived table (proxy.rewrite.derived), or an ORDER BY with LIMIT of an
    encrypted column the proxy sorts (decrypted text, min=DET: the cut is its decision). Its
    result, even a COUNT or a plain column's values or whether it is empty, then tells
    something the server cannot compute: it may only reach the server encrypted."""
    from proxy.rewrite.residual import is_word_pattern

    selects = [inner] if isinstance(inner, exp.Select) else []
    selects += [s for s in inner.find_all(exp.Select) if s is not inner]
    for sel in selects:
        tables = [t for _, t in _tables(sel, ctx) if t is not None]
        if not tables:
            continue
        if sel.args.get("having") is not None:
            return "HAVING"
        if derived_source(sel) is not None and not passes_rows(sel):
            return "a query over a derived table"
        order = sel.args.get("order")
        if order is not None and (sel.args.get("limit") or sel.args.get("offset")):
            for c in order.find_all(exp.Column):
                col = next((x for t in tables if (x := t.column(c.name)) is not None), None)
                if col is not None and _sorted_in_proxy(col):  # then so is the cut
                    return f"ORDER BY encrypted column {c.name} with LIMIT"
        where = sel.args.get("where")
        for cond in where.find_all(*_PROXY_FILTERS) if where is not None else []:
            if isinstance(cond, exp.Like):
                pattern = cond.expression
                if isinstance(pattern, exp.Literal) and is_word_pattern(pattern.this):
                    continue  # '%word%': the Search onion, on the server
            for c in cond.find_all(exp.Column):
                col = next((x for t in tables if (x := t.column(c.name)) is not None), None)
                if col is not None and not col.plain and col.kind == Kind.STRING:
                    return f"a condition on encrypted text column {c.name}"
    return None


def _sorted_in_proxy(col: Column) -> bool:
    """An encrypted column the server cannot order: text (the OPE key does not order it as
    MariaDB does), or no Ord onion it may peel to OPE (proxy.rewrite.select sorts those)."""
    if col.plain:
        return False
    return col.kind == Kind.STRING or "ord" not in col.onions or not col.allows("ord", "ope")


def _target_column(target: exp.Column, outer: list[tuple[str, Table | None]]) -> Column | None:
    """The proxy's column a subquery's values are compared with (None: another table's)."""
    for alias, t in outer:
        if t is None or (target.table and target.table != alias):
            continue
        c = t.column(target.name)
        if c is not None:
            return c
    if outer and all(t is not None for _, t in outer):  # the proxy's tables only: MariaDB's
        raise UnknownColumn(target.sql("mysql"), "where clause")
    return None


def _inner(sq: exp.Expression) -> exp.Expression:
    inner = sq.this
    if isinstance(sq, exp.Any | exp.All) and isinstance(inner, exp.Subquery):
        inner = inner.this
    return inner


def _row_operand(sq: exp.Expression, node: exp.Expression) -> MysqlError:
    """MariaDB's error for a subquery of several columns where one value is expected."""
    parent = _unparen_up(sq)[1]
    if isinstance(sq, exp.Any | exp.All):
        pass
    elif isinstance(parent, _COMPARE) and not (
        isinstance(node, exp.Update) and parent.parent is node
    ):
        op = COMPARISONS[type(parent)]
        return MysqlError(
            4078, "HY000", f"Illegal parameter data types and row for operation '{op}'"
        )
    return MysqlError(1241, "21000", "Operand should contain 1 column(s)")


def _one_column(sq: exp.Expression, node: exp.Expression, rows: list[tuple[Any, ...]]) -> None:
    if rows and len(rows[0]) != 1:
        raise _row_operand(sq, node)


def _substitute(
    sq: exp.Expression, node: exp.Expression, use: _Use, rows: list[tuple[Any, ...]]
) -> None:
    if use.kind == "exists":
        if _constant_select(sq, node):  # `SELECT 1`: MariaDB's INT(1) for an EXISTS too
            sq.replace(exp.Literal.number(1 if rows else 0))
        else:
            sq.replace(exp.true() if rows else exp.false())
        return
    _one_column(sq, node, rows)
    if use.kind == "item":  # the value is added to the decoded rows: out of the statement
        if len(rows) > 1:
            raise MysqlError(1242, "21000", "Subquery returns more than 1 row")
        (sq.parent if isinstance(sq.parent, exp.Alias) else sq).pop()
        return
    if use.kind == "scalar":
        if len(rows) > 1:
            raise MysqlError(1242, "21000", "Subquery returns more than 1 row")
        value = rows[0][0] if rows else None
        if use.col is not None and use.op and not exact(use.col, value):
            parent = _unparen_up(sq)[1]
            assert parent is not None and use.target is not None
            parent.replace(exp.paren(inexact(use.target.copy(), use.col, use.op, value)))
            return
        sq.replace(literal(value))
        return
    values = list(dict.fromkeys(r[0] for r in rows))
    if len(values) > MAX_IN_VALUES:
        raise Unsupported(f"IN (SELECT ...) with more than {MAX_IN_VALUES} distinct values")
    if use.kind in ("any", "all"):
        parent = _unparen_up(sq)[1]
        assert parent is not None and use.target is not None
        parent.replace(
            exp.paren(quantified(use.target, use.op, use.kind == "any", use.col, values))
        )
        return
    in_node = _unparen_up(sq)[1]
    assert isinstance(in_node, exp.In)
    if not values:
        in_node.replace(exp.false())  # MariaDB: x IN (empty) is FALSE, even for a NULL x
        return
    if use.col is not None:
        # A value the column cannot hold equals none of its values: dropped (x IN (2.5, 3)
        # is x IN (3)); if none is left, FALSE, or NULL for a NULL x.
        col = use.col
        values = [v for v in values if exact(col, v)]
        if not values:
            assert use.target is not None
            in_node.replace(exp.paren(inexact(use.target.copy(), col, "=", Decimal("0.5"))))
            return
    in_node.set("query", None)
    in_node.set("expressions", [literal(v) for v in values])


# ---- the plan --------------------------------------------------------------------------------


def plan(node: exp.Expression, ctx: Ctx) -> SubqueriesFirst:
    if not isinstance(node, exp.Select | exp.Update | exp.Delete):
        raise Unsupported(f"subqueries in {node.key.upper()} statements")
    write = not isinstance(node, exp.Select)
    # A write's inner reads are locked, and so are those of a locked inner read in turn.
    lock = write or bool(node.args.get("locks"))
    tree = node.copy()
    if isinstance(tree, exp.Select):
        _name_items(tree, ctx.sql)
    outer = _outer_tables(tree, ctx)
    if isinstance(tree, exp.Select):
        for j in tree.args.get("joins") or []:
            if not isinstance(j.this, exp.Table):
                raise Unsupported("subqueries in FROM (derived tables)")
        from_ = tree.args.get("from_")
        if from_ is not None and not isinstance(from_.this, exp.Table):
            raise Unsupported("subqueries in FROM (derived tables)")
    # Correlated EXISTS tied by one equality: an IN decided like the others.
    decorrelate({alias for alias, _ in outer}, _top_level(tree))
    subs = _top_level(tree)
    uses = [_classify(sq, tree) for sq in subs]
    inner_sql: list[str] = []
    for sq, use in zip(subs, uses, strict=True):
        inner = _inner(sq)
        if not isinstance(inner, exp.Select | exp.Union):
            raise Unsupported("this kind of subquery")
        _check_uncorrelated(inner, outer, ctx)
        if use.kind in ("in", "any", "all") and inner.args.get("limit") is not None:
            # MariaDB's own refusal, word for word.
            raise MysqlError(
                ER_NOT_SUPPORTED_YET,
                "42000",
                "This version of MariaDB doesn't yet support 'LIMIT & IN/ALL/ANY/SOME subquery'",
            )
        if use.kind != "exists" and isinstance(inner, exp.Select):
            items = inner.expressions
            if len(items) != 1 and not any(isinstance(i, exp.Star) for i in items):
                raise _row_operand(sq, tree)
        decided = _selected_in_proxy(inner, ctx)
        if decided is not None and use.kind != "item":
            col = _target_column(use.target, outer) if use.target is not None else None
            if use.kind == "exists" or col is None or col.plain:
                raise Unsupported(
                    f"a subquery whose rows the proxy selects itself ({decided}) used "
                    "where its result would reach the server in plaintext"
                )
        if use.target is not None:
            source = _sensitive(inner, ctx)
            col = _target_column(use.target, outer)
            encrypted = col is not None and not col.plain
            if encrypted and col is not None and col.kind in NUMBERS:
                use.col = col
            if source is not None and not encrypted:
                raise Unsupported(
                    f"comparing column {use.target.name} with values of encrypted column "
                    f"{source} from a subquery (they would reach the server in plaintext)"
                )
        inner_sql.append(_inner_text(inner, use, lock))
    template = tree
    finish = _select_list_items(tree, subs, uses) if any(u.kind == "item" for u in uses) else None

    def outer_sql(results: list[list[tuple[Any, ...]]]) -> str:
        out = template.copy()
        for sq, use, rows in zip(_top_level(out), uses, results, strict=True):
            _substitute(sq, out, use, list(rows))
        return out.sql(dialect="mysql")

    return SubqueriesFirst(inner_sql, outer_sql, write, finish)


def _select_list_items(tree: exp.Select, subs: list[exp.Expression], uses: list[_Use]) -> Any:
    """Subqueries in the select list: their value is the same in every row, so the outer
    statement goes without them and the proxy adds the value to each decoded row (the server
    never sees it). Their result column is described as MariaDB does."""
    items = tree.expressions
    if any(isinstance(e, exp.Star) or isinstance(e.this, exp.Star) for e in items):
        raise Unsupported("a subquery in a select list with *")
    where: list[tuple[int, int, str]] = []  # (position in the select list, inner index, name)
    for i, (sq, use) in enumerate(zip(subs, uses, strict=True)):
        if use.kind != "item":
            continue
        item = sq.parent if isinstance(sq.parent, exp.Alias) else sq
        name = item.alias if isinstance(item, exp.Alias) else item.sql(dialect="mysql")
        where.append((items.index(item), i, name))
    if len(where) == len(items):
        raise Unsupported("a select list of subqueries only")
    named = {name.lower() for _, _, name in where}
    for clause in ("order", "group", "having"):
        part = tree.args.get(clause)
        if part is not None and any(c.name.lower() in named for c in part.find_all(exp.Column)):
            raise Unsupported(f"{clause.upper()} naming a subquery in the select list")

    def finish(outer: Any, results: list[tuple[Decoder | None, list[tuple[Any, ...]]]]) -> Any:
        if not isinstance(outer, Execute) or outer.decoder is None:
            raise Unsupported("a subquery in the select list of this statement")
        inserts = []
        for pos, i, name in where:
            decoder, rows = results[i]
            if decoder is None or len(decoder.columns) != 1:
                raise Unsupported("a subquery in the select list over other tables")
            value = rows[0][0] if rows else None
            inserts.append((pos, _item_column(decoder.columns[0], name), value))
        small = outer.small
        if small is not None:  # the few-rows SUM / AVG path gets the same columns
            small = (small[0], ConstantColumns(small[1], inserts), small[2])
        return replace(outer, decoder=ConstantColumns(outer.decoder, inserts), small=small)

    return finish


def _item_column(c: OutCol, name: str) -> OutCol:
    """MariaDB's description of a subquery's column in the select list: the inner column's
    type, nullable, no origin, BINARY unless case-insensitive text, text decimals 39."""
    text = c.type in (T_BLOB, 253, 254)
    binary = not text or bool(c.flags & BINARY_FLAG)
    flags = (BINARY_FLAG if binary else 0) | (c.flags & UNSIGNED_FLAG)
    length = 4 * 262140 if c.type == T_BLOB else c.length
    return replace(
        c,
        name=name,
        flags=flags,
        length=length,
        decimals=NOT_FIXED_DEC if text else c.decimals,
        table="",
        org_table="",
        org_name="",
        expression=True,
    )


class ConstantColumns(Decoder):
    """A decoder whose rows get constant values inserted at given positions."""

    def __init__(self, inner: Decoder, inserts: list[tuple[int, OutCol, Any]]) -> None:
        inserts = sorted(inserts, key=lambda x: x[0])
        columns = list(inner.columns)
        for pos, col, _ in inserts:
            columns.insert(pos, col)
        super().__init__(columns, [], [], None, 0, inner.database)
        self._inner = inner
        self._inserts = inserts

    def decode(self, rows: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
        out = []
        for row in self._inner.decode(rows):
            values = list(row)
            for pos, _, value in self._inserts:
                values.insert(pos, value)
            out.append(tuple(values))
        return out


def _inner_text(inner: exp.Expression, use: _Use, lock: bool) -> str:
    inner = inner.copy()
    if isinstance(inner, exp.Select) and inner.args.get("limit") is None:
        if use.kind == "exists":
            inner.set("limit", exp.Limit(expression=exp.Literal.number(1)))  # one row decides
        elif use.kind in ("scalar", "item"):
            inner.set("limit", exp.Limit(expression=exp.Literal.number(2)))  # two: error 1242
    text = inner.sql(dialect="mysql")
    if lock:
        if not isinstance(inner, exp.Select) or inner.args.get("locks"):
            raise Unsupported("this subquery in UPDATE / DELETE")
        # The rows read decide what the write changes: lock them until it commits, as
        # MariaDB's own subqueries in UPDATE / DELETE do (sqlglot would write FOR SHARE).
        text += " LOCK IN SHARE MODE"
    return text


def _name_items(tree: exp.Select, sql: str) -> None:
    """MariaDB names an expression's result column as the statement spells it; the outer
    statement is regenerated by sqlglot (`count( a )` -> `COUNT(a)`), so name it explicitly."""
    from proxy.rewrite.select import _written

    for e in list(tree.expressions):
        inner = e.this if isinstance(e, exp.Not) else e
        if isinstance(inner, exp.Exists) and isinstance(e, exp.Exists | exp.Not):
            # Named by its text, which would reach the server in `SELECT 1 AS <text>`.
            raise Unsupported("EXISTS in the select list without an alias")
        if not isinstance(e, exp.Func):  # _written reads a call's text (name through ")")
            continue
        name = _written(e, sql) or e.sql("mysql")
        e.replace(exp.alias_(e.copy(), name, quoted=True))
