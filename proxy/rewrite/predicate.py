"""WHERE / ON conditions -> backend conditions on onion columns.

    c = k, c <> k, c <=> k, c IN (...)   Eq onion at DET (or, for numbers and dates without an
                                         Eq onion, Ord at OPE)
    c < k, <=, >, >=, BETWEEN            Ord onion at OPE (not for text: OPE orders prefixes)
    c IS [NOT] NULL                      any onion column (NULL stays NULL in every onion)
    c LIKE '%word%'                      Search onion: whole-word match (cryptdb_search_match)
    a = b                                Eq onions at DET under one key (same join group)
    AND, OR, NOT, parentheses            kept as they are

SQL's three-valued logic carries over because NULL stays NULL in every onion. Anything else
(functions, arithmetic, subqueries) on a statement that touches an encrypted table is
refused.
"""

from __future__ import annotations

from sqlglot import exp

from proxy.rewrite.errors import Unsupported
from proxy.rewrite.plan import Enc, RawLit, Segment
from proxy.rewrite.resolve import Ctx, Scope, Source, constant, is_null, need
from proxy.schema import Column

# The comparison operators, by node type, and each one with its operands swapped: shared by
# the server-side rewrite here and the proxy-side evaluators (having, residual, subquery).
COMPARISONS: dict[type[exp.Expression], str] = {
    exp.EQ: "=",
    exp.NEQ: "<>",
    exp.NullSafeEQ: "<=>",
    exp.LT: "<",
    exp.LTE: "<=",
    exp.GT: ">",
    exp.GTE: ">=",
}
FLIP = {"=": "=", "<>": "<>", "<=>": "<=>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_EQUALITY = ("=", "<>", "<=>")

# ("col", Source, Column) | ("const", idx, neg) | ("null", ..) | ("sql", text, None)
Operand = tuple[str, object, object]


def predicate(
    node: exp.Expression, *, ctx: Ctx, scope: Scope, where: str = "where clause"
) -> list[Segment]:
    if isinstance(node, exp.And | exp.Or):
        word = " AND " if isinstance(node, exp.And) else " OR "
        return [
            "(",
            *predicate(node.this, ctx=ctx, scope=scope, where=where),
            word,
            *predicate(node.expression, ctx=ctx, scope=scope, where=where),
            ")",
        ]
    if isinstance(node, exp.Not):
        return ["(NOT ", *predicate(node.this, ctx=ctx, scope=scope, where=where), ")"]
    if isinstance(node, exp.Paren):
        return predicate(node.this, ctx=ctx, scope=scope, where=where)
    if isinstance(node, exp.Boolean):
        return ["TRUE" if node.this else "FALSE"]
    op = COMPARISONS.get(type(node))
    if op is not None:
        return _compare(op, node.this, node.expression, ctx, scope, where)
    if isinstance(node, exp.In):
        return _in(node, ctx, scope, where)
    if isinstance(node, exp.Between):
        return _between(node, ctx, scope, where)
    if isinstance(node, exp.Is) and is_null(node.expression):
        return _is_null(node.this, ctx, scope, where)
    if isinstance(node, exp.Like):
        return _like(node, ctx, scope, where)
    c = constant(node, ctx)
    if c is not None:  # WHERE 1
        return [RawLit(*c)]
    raise Unsupported(f"{type(node).__name__.upper()} in a condition")


def _operand(node: exp.Expression, ctx: Ctx, scope: Scope, where: str) -> Operand:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Column):
        src, col = scope.column(node, where)
        return ("col", src, col)
    if isinstance(node, exp.Null):
        return ("null", None, None)
    if isinstance(node, exp.HexString | exp.BitString):  # x'..' / b'..': for plain columns
        return ("sql", node.sql("mysql"), None)
    c = constant(node, ctx)
    if c is None:
        raise Unsupported(f"{type(node).__name__.upper()} in a condition")
    return ("const", c[0], c[1])


def _any_onion(src: Source, col: Column) -> str:
    return src.col(col.plain_name if col.plain else col.backend_columns()[0])


def _compare(
    op: str, left: exp.Expression, right: exp.Expression, ctx: Ctx, scope: Scope, where: str
) -> list[Segment]:
    a, b = _operand(left, ctx, scope, where), _operand(right, ctx, scope, where)
    if a[0] != "col" and b[0] == "col":
        a, b, op = b, a, FLIP[op]
    if a[0] != "col":
        if a[0] == b[0] == "const":  # WHERE 1 = 1, as ORMs write: no column data involved
            return [RawLit(a[1], a[2]), f" {op} ", RawLit(b[1], b[2])]  # type: ignore[arg-type]
        raise Unsupported("a condition without a column")
    src, col = a[1], a[2]
    assert isinstance(src, Source) and isinstance(col, Column)
    if b[0] == "null":
        return [_any_onion(src, col), f" {op} NULL"]
    if b[0] == "col":
        return _compare_columns(op, src, col, b[1], b[2], ctx)  # type: ignore[arg-type]
    if b[0] == "sql":
        if not col.plain:
            raise Unsupported(f"a hexadecimal or bit literal compared with column {col.name}")
        return [src.col(col.plain_name), f" {op} ", str(b[1])]
    idx, neg = b[1], b[2]
    assert isinstance(idx, int) and isinstance(neg, bool)
    if col.plain:
        return [src.col(col.plain_name), f" {op} ", RawLit(idx, neg)]
    onion, layer = need(ctx, src, col, "equality" if op in _EQUALITY else "order")
    how = "det" if onion == "eq" else "ope"
    return [src.col(col.onion_name(onion)), f" {op} ", Enc(src.ref(col), how, idx, neg)]


def _compare_columns(
    op: str, sa: Source, ca: Column, sb: Source, cb: Column, ctx: Ctx
) -> list[Segment]:
    if ca.plain and cb.plain:
        return [sa.col(ca.plain_name), f" {op} ", sb.col(cb.plain_name)]
    if ca.plain or cb.plain or op not in _EQUALITY:
        raise Unsupported(f"comparing {sa.table.name}.{ca.name} with {sb.table.name}.{cb.name}")
    same_key = (sa.table.id, ca.id) == (sb.table.id, cb.id) or (
        ca.join_group is not None and ca.join_group == cb.join_group
    )
    if not same_key or ca.kind != cb.kind:
        raise Unsupported(
            f"comparing {sa.table.name}.{ca.name} with {sb.table.name}.{cb.name}"
            " (declare both in one join group)"
        )
    need(ctx, sa, ca, "grouping")
    need(ctx, sb, cb, "grouping")
    return [sa.col(ca.onion_name("eq")), f" {op} ", sb.col(cb.onion_name("eq"))]


def _in(node: exp.In, ctx: Ctx, scope: Scope, where: str) -> list[Segment]:
    if node.args.get("query") is not None or node.args.get("unnest") or node.args.get("field"):
        raise Unsupported("IN with a subquery")
    kind, src, col = _operand(node.this, ctx, scope, where)
    if kind != "col" or not node.expressions:
        raise Unsupported("IN without a column")
    assert isinstance(src, Source) and isinstance(col, Column)
    items: list[Segment] = []
    onion = None
    for i, e in enumerate(node.expressions):
        if i:
            items.append(", ")
        if is_null(e):
            items.append("NULL")
            continue
        c = constant(e, ctx)
        if c is None:
            raise Unsupported("IN with a non-constant item")
        if col.plain:
            items.append(RawLit(c[0], c[1]))
            continue
        if onion is None:
            onion, _ = need(ctx, src, col, "equality")
        items.append(Enc(src.ref(col), "det" if onion == "eq" else "ope", c[0], c[1]))
    name = (
        col.plain_name
        if col.plain
        else col.onion_name(onion)
        if onion
        else col.backend_columns()[0]
    )
    return [src.col(name), " IN (", *items, ")"]


def _between(node: exp.Between, ctx: Ctx, scope: Scope, where: str) -> list[Segment]:
    kind, src, col = _operand(node.this, ctx, scope, where)
    lo, hi = constant(node.args["low"], ctx), constant(node.args["high"], ctx)
    if kind != "col" or lo is None or hi is None or node.args.get("symmetric"):
        raise Unsupported("BETWEEN without a column and two constants")
    assert isinstance(src, Source) and isinstance(col, Column)
    if col.plain:
        return ["(", src.col(col.plain_name), " BETWEEN ", RawLit(*lo), " AND ", RawLit(*hi), ")"]
    need(ctx, src, col, "order")
    ref = src.ref(col)
    return [
        "(",
        src.col(col.onion_name("ord")),
        " BETWEEN ",
        Enc(ref, "ope", *lo),
        " AND ",
        Enc(ref, "ope", *hi),
        ")",
    ]


def _is_null(node: exp.Expression, ctx: Ctx, scope: Scope, where: str) -> list[Segment]:
    kind, src, col = _operand(node, ctx, scope, where)
    if kind != "col":
        raise Unsupported("IS NULL without a column")
    assert isinstance(src, Source) and isinstance(col, Column)
    return [_any_onion(src, col), " IS NULL"]


def _like(node: exp.Like, ctx: Ctx, scope: Scope, where: str) -> list[Segment]:
    if node.args.get("negate"):  # sqlglot parses `x NOT LIKE p` as LIKE with negate set
        return ["(NOT ", *_like(exp.Like(this=node.this, expression=node.expression), ctx,
                                scope, where), ")"]  # fmt: skip
    kind, src, col = _operand(node.this, ctx, scope, where)
    from proxy.rewrite.residual import binary_pattern

    pattern, binary = binary_pattern(node.expression)
    if kind != "col" or not isinstance(pattern, exp.Literal) or not pattern.is_string:
        raise Unsupported("LIKE without a column and a pattern")
    assert isinstance(src, Source) and isinstance(col, Column)
    idx = ctx.lit(pattern)
    if col.plain:
        return [src.col(col.plain_name), " LIKE BINARY " if binary else " LIKE ", RawLit(idx)]
    if binary:  # encrypted text takes it as a residual; anything else has no byte form here
        raise Unsupported(f"LIKE BINARY on encrypted column {col.name}")
    need(ctx, src, col, "word search")
    return [
        "cryptdb_search_match(",
        src.col(col.onion_name("search")),
        ", ",
        Enc(src.ref(col), "token", idx),
        ") = 1",
    ]
