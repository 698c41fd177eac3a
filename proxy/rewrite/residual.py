"""Residual conditions: WHERE conjuncts on encrypted text that the server cannot evaluate,
evaluated by the proxy on the decrypted values.

    s < 'm', s <= k, s > k, s >= k, s [NOT] BETWEEN a AND b     text ranges
    s [NOT] LIKE 'abc%' [ESCAPE 'x']                            any pattern but '%word%'

OPE cannot serve them: its key folds ASCII case and orders 8-byte prefixes, so a server-side
prefilter would drop qualifying rows. They are evaluated exactly here, for columns whose
collation is binary (`utf8mb4_bin`): code-point order with PAD SPACE for comparisons
(`'a ' = 'a'`, `'a\\t' < 'a'`), and for LIKE a case-sensitive match per code point without
padding (`%`, `_`, the escape `\\` or ESCAPE 'x'), as MariaDB's my_wildcmp does.

A residual is a top-level conjunct of a SELECT's WHERE (`c1 AND c2 AND ...`, parentheses
allowed, NOT of one such condition allowed): it is removed from the backend WHERE, its column
is read as a hidden item, and the decoder drops the rows for which it is not TRUE (NULL is
not TRUE, as in a WHERE). The other conjuncts still go to the server, so the cost is a scan
of the rows they select: every one is sent and decrypted. ORDER BY / LIMIT / OFFSET are then
applied here, and ungrouped COUNT / SUM / AVG / MIN / MAX are computed here over the kept
rows; GROUP BY, DISTINCT and HAVING with a residual are refused. So are residuals under OR
or NOT (removing them would change the result), in JOIN ON, and on columns of a non-binary
collation (the proxy does not reproduce `_ci` collations exactly). UPDATE / DELETE read the
matching rows' IVs first (ResidualWrite, below).

The residual's constants never reach the server: they stay statement literals, read at bind
time, so the plan is cached like any other. Whether a LIKE goes to the Search onion or
stays here depends on its pattern, which the shape cache abstracts away: the template
records the choice (`Template.lit_checks`) and a statement whose pattern would be decided
otherwise is planned again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlglot import exp

from onion.encoding import Kind
from onion.search import normalize_words
from proxy.rewrite.decode import (
    DecoderSpec,
    OutCol,
    ReaderSpec,
    count_out,
    min_max_out,
    pad_space_cmp,
    sum_out,
)
from proxy.rewrite.errors import Unsupported, bad_constant
from proxy.rewrite.literals import Lit, column_value
from proxy.rewrite.plan import Segment, Template
from proxy.rewrite.predicate import FLIP, predicate
from proxy.rewrite.resolve import Ctx, Scope, Source, constant
from proxy.schema import Column

_RANGE: dict[type[exp.Expression], str] = {exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}


@dataclass(frozen=True)
class Atom:
    """One residual condition: `kind` cmp (op, one literal), between (two), like (pattern,
    optional ESCAPE literal); `reader` is the decoded-row position of the column's value."""

    kind: str
    src: Source
    col: Column
    op: str = ""
    lits: tuple[int | None, ...] = ()
    negated: bool = False
    reader: int = -1
    binary: bool = False  # LIKE BINARY: bytes compared, whatever the column's collation


# ---- which conditions are residuals ------------------------------------------------------------


def is_word_pattern(pattern: str) -> bool:
    """`'%word%'` with one word: what the Search onion answers (proxy.rewrite.plan's
    search_word accepts exactly these)."""
    inner = pattern[1:-1] if len(pattern) > 2 and pattern[0] == pattern[-1] == "%" else ""
    if not inner or any(ch in inner for ch in "%_\\"):
        return False
    return len(normalize_words(inner)) == 1 and re.fullmatch(r"[^\W_]+", inner) is not None


def _text_column(node: exp.Expression, scope: Scope) -> tuple[Source, Column] | None:
    while isinstance(node, exp.Paren):
        node = node.this
    if not isinstance(node, exp.Column) or not isinstance(node.this, exp.Identifier):
        return None
    src, col = scope.column(node, "where clause")
    return (src, col) if not col.plain and col.kind == Kind.STRING else None


def _string_literal(node: exp.Expression, col: Column, ctx: Ctx) -> int | None:
    """The literal index of a text constant; None for anything else (NULL, a column: the
    server path decides). A number against text would be compared as numbers: refused, as
    every constant of the wrong type for an encrypted column is."""
    c = constant(node, ctx)
    if c is None:
        return None
    idx, neg = c
    lit = node
    while isinstance(lit, exp.Paren | exp.Neg):
        lit = lit.this
    if neg or not (isinstance(lit, exp.Literal) and lit.is_string):
        raise bad_constant(col.name, "a number for a text column")
    return idx


def atom(node: exp.Expression, ctx: Ctx, scope: Scope) -> Atom | None:
    """The residual this condition is, or None when the server evaluates it. Records, for
    the shape cache, how each LIKE pattern on encrypted text was decided."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Not):
        a = atom(node.this, ctx, scope)
        return None if a is None else replace(a, negated=not a.negated)
    found: Atom | None = None
    if type(node) in _RANGE:
        op = _RANGE[type(node)]
        left, right = node.this, node.expression
        sc = _text_column(left, scope)
        if sc is None and (sc := _text_column(right, scope)) is not None:
            left, right, op = right, left, FLIP[op]
        if sc is not None:
            i = _string_literal(right, sc[1], ctx)
            if i is not None:
                found = Atom("cmp", sc[0], sc[1], op, (i,))
    elif isinstance(node, exp.Between) and not node.args.get("symmetric"):
        sc = _text_column(node.this, scope)
        if sc is not None:
            lo = _string_literal(node.args["low"], sc[1], ctx)
            hi = _string_literal(node.args["high"], sc[1], ctx)
            if lo is not None and hi is not None:
                found = Atom("between", sc[0], sc[1], lits=(lo, hi))
    elif isinstance(node, exp.Escape | exp.Like):
        found = _like(node, ctx, scope)
    if found is not None and not found.binary and not found.col.binary_collation():
        raise Unsupported(
            f"{'LIKE pattern' if found.kind == 'like' else 'range comparison'} on encrypted "
            f"text column {found.src.table.name}.{found.col.name}: its collation "
            f"({found.col.collation or 'utf8mb4_general_ci'}) cannot be evaluated by the proxy "
            "exactly (declare the column COLLATE utf8mb4_bin to enable it)"
        )
    if found is not None and "eq" not in found.col.onions:
        raise Unsupported(
            f"a condition on {found.src.table.name}.{found.col.name} evaluated by the proxy "
            "(the column has no Eq onion to read it from)"
        )
    return found


def _like(node: exp.Expression, ctx: Ctx, scope: Scope) -> Atom | None:
    escape = None
    if isinstance(node, exp.Escape):
        escape, node = node.expression, node.this
        if not isinstance(node, exp.Like):
            return None
    assert isinstance(node, exp.Like)
    sc = _text_column(node.this, scope)
    pattern, binary = binary_pattern(node.expression)
    if sc is None or not isinstance(pattern, exp.Literal) or not pattern.is_string:
        return None  # the server path refuses what it cannot take
    idx = ctx.lit(pattern)
    # LIKE BINARY (Django's contains / startswith) is a byte-exact substring match: always
    # decided here, never the Search onion's word match.
    word = escape is None and not binary and is_word_pattern(pattern.this)
    if escape is None and not binary:  # with ESCAPE / BINARY always decided here
        ctx.checks.append((idx, word))
    if word:
        return None  # the Search onion: whole-word match (documented semantics)
    esc_idx = None
    if escape is not None:
        if not isinstance(escape, exp.Literal) or not escape.is_string:
            raise Unsupported("ESCAPE other than a quoted character")
        esc_idx = ctx.lit(escape)
    negated = bool(node.args.get("negate"))
    return Atom("like", sc[0], sc[1], lits=(idx, esc_idx), negated=negated, binary=binary)


def binary_pattern(node: exp.Expression) -> tuple[exp.Expression, bool]:
    """`BINARY 'p'` (a cast of the pattern): the pattern, and whether it was cast."""
    if (
        isinstance(node, exp.Cast)
        and isinstance(node.to, exp.DataType)
        and node.to.this == exp.DataType.Type.BINARY
        and not node.to.expressions
    ):
        return node.this, True
    return node, False


def conjuncts(node: exp.Expression) -> list[exp.Expression]:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        return [*conjuncts(node.this), *conjuncts(node.expression)]
    return [node]


_CANDIDATES = (exp.LT, exp.LTE, exp.GT, exp.GTE, exp.Between, exp.Like, exp.Escape)


def _refuse_nested(node: exp.Expression, ctx: Ctx, scope: Scope, where: str) -> None:
    """A residual anywhere inside `node` (under OR / NOT, in ON, in a write) is refused:
    the server cannot evaluate it and removing it would change the result."""
    for sub in node.find_all(*_CANDIDATES):
        if isinstance(sub, exp.Like) and isinstance(sub.parent, exp.Escape):
            continue  # decided with its ESCAPE
        a = atom(sub, ctx, scope)
        if a is not None:
            raise Unsupported(
                f"{'LIKE pattern' if a.kind == 'like' else 'range comparison'} on encrypted "
                f"text column {a.src.table.name}.{a.col.name} {where} (the proxy evaluates "
                "it only as a top-level AND condition of a SELECT's WHERE)"
            )


def split_where(
    cond: exp.Expression | None, ctx: Ctx, scope: Scope
) -> tuple[list[exp.Expression], list[Atom]]:
    """(the conjuncts for the server, the residuals)."""
    if cond is None:
        return [], []
    server: list[exp.Expression] = []
    residuals: list[Atom] = []
    for c in conjuncts(cond):
        a = atom(c, ctx, scope)
        if a is not None:
            residuals.append(a)
        else:
            _refuse_nested(c, ctx, scope, "under OR / NOT")
            server.append(c)
    return server, residuals


def server_where(conjuncts: Sequence[exp.Expression], ctx: Ctx, scope: Scope) -> list[Segment]:
    """` WHERE (c1) AND (c2) ...` for the conjuncts the server evaluates."""
    out: list[Segment] = []
    for c in conjuncts:
        out += [" WHERE (" if not out else " AND (", *predicate(c, ctx=ctx, scope=scope), ")"]
    return out


def check_grouping(node: exp.Select) -> None:
    for key, what in (("group", "GROUP BY"), ("distinct", "DISTINCT"), ("having", "HAVING")):
        if node.args.get(key) is not None:
            raise Unsupported(
                f"{what} with a WHERE condition the proxy evaluates (text range or LIKE "
                "pattern on an encrypted column)"
            )


def text_min_max(items: Sequence[tuple[Any, str]], scope: Scope) -> bool:
    """MIN / MAX of an encrypted text column among the select items."""
    return any(
        isinstance(e, exp.Min | exp.Max)
        and isinstance(e.this, exp.Column)
        and _text_column(e.this, scope) is not None
        for e, _ in items
    )


# ---- ungrouped aggregates over the kept rows ---------------------------------------------------


def aggregate_select(
    node: exp.Select,
    ctx: Ctx,
    scope: Scope,
    items: Sequence[tuple[Any, str]],
    from_sql: list[Segment],
    where_sql: list[Segment],
    residuals: list[Atom],
    database: str,
) -> Template:
    """COUNT / SUM / AVG / MIN / MAX without GROUP BY, computed here from the rows' values:
    with a residual (the server cannot count rows it does not know are kept), or for MIN /
    MAX of `_bin` encrypted text (OPE does not order text as MariaDB does)."""
    from proxy.rewrite.select import (
        _limit_index,
        _Out,
        _select_list,
        column_reader,
        readable_without_hom,
    )

    if node.args.get("group") is not None or node.args.get("distinct") is not None:
        raise Unsupported("MIN/MAX of encrypted text with GROUP BY or DISTINCT")
    if node.args.get("having") is not None or node.args.get("order") is not None:
        raise Unsupported(
            "HAVING / ORDER BY with aggregates the proxy computes (MIN/MAX of encrypted text, "
            "or a WHERE condition the proxy evaluates)"
        )
    out = _Out()
    readers: list[ReaderSpec] = []
    columns: list[OutCol] = []
    aggs: list[tuple[str, int | None, int]] = []
    for e, name in items:
        if isinstance(e, exp.Count) and isinstance(e.this, exp.Star):
            aggs.append(("count*", None, 0))
            columns.append(count_out(name))
            continue
        if not isinstance(e, exp.Count | exp.Sum | exp.Avg | exp.Min | exp.Max):
            raise Unsupported("columns or constants next to aggregates the proxy computes")
        if not isinstance(e.this, exp.Column) or e.expressions:
            raise Unsupported(f"{e.key.upper()} of anything but one column, in the proxy")
        src, col = scope.column(e.this, "field list")
        if not isinstance(e, exp.Count) and not readable_without_hom(col):
            raise Unsupported(
                f"{e.key.upper()} of {src.table.name}.{col.name} in the proxy: its only onion "
                "is Add, a Paillier decryption per row"
            )
        if isinstance(e, exp.Count):
            # only NULL-ness counts: any onion column, not decrypted
            target = col.plain_name if col.plain else col.backend_columns()[0]
            readers.append(ReaderSpec("present", (out.add([src.col(target)]),)))
            aggs.append(("count", len(readers) - 1, 0))
            columns.append(count_out(name))
            continue
        if isinstance(e, exp.Sum | exp.Avg):
            if col.kind not in (Kind.INT, Kind.UINT, Kind.DECIMAL):
                raise Unsupported(f"{e.key.upper()} of a non-numeric column")
            avg = isinstance(e, exp.Avg)
            columns.append(sum_out(col, name, avg))
            readers.append(column_reader(ctx, out, src, col, False))
            aggs.append(("avg" if avg else "sum", len(readers) - 1, min(col.scale + 4, 38)))
            continue
        fn = "min" if isinstance(e, exp.Min) else "max"
        oc = min_max_out(col, name)
        if col.kind == Kind.STRING:
            if not col.binary_collation():  # computed here: only a collation done exactly
                raise Unsupported(
                    f"MIN/MAX of encrypted text column {src.table.name}.{col.name}: its "
                    f"collation ({col.collation or 'utf8mb4_general_ci'}) cannot be evaluated "
                    "by the proxy exactly (declare the column COLLATE utf8mb4_bin to enable it)"
                )
            fn += "_bin"
        readers.append(column_reader(ctx, out, src, col, False))
        aggs.append((fn, len(readers) - 1, 0))
        columns.append(oc)
    spec = DecoderSpec(columns, readers, database=database, aggregate=aggs)
    spec.residual = add_readers(residuals, ctx, out, readers)
    limit, offset = node.args.get("limit"), node.args.get("offset")
    spec.limit = _limit_index(limit, ctx) if limit is not None else None
    spec.offset = _limit_index(offset, ctx) if offset is not None else None
    tail: list[Segment] = [" FROM ", *from_sql, *where_sql, *_locks(node, ctx)]
    return Template(segments=["SELECT ", *(_select_list(out) if out.items else ["1"]), *tail],
                    decoder=spec)  # fmt: skip


def _locks(node: exp.Select, ctx: Ctx) -> list[Segment]:
    locks = node.args.get("locks") or []
    tail: list[Segment] = [
        " FOR UPDATE" if lk.args.get("update") else " LOCK IN SHARE MODE" for lk in locks
    ]
    if ctx.current_read and not locks:
        tail.append(" LOCK IN SHARE MODE")
    return tail


def add_readers(
    residuals: list[Atom], ctx: Ctx, out: Any, readers: list[ReaderSpec]
) -> tuple[Atom, ...] | None:
    """Hidden readers for the residuals' columns, appended to `readers` (after the visible
    ones); the atoms with their positions, for the decoder (DecoderSpec.residual)."""
    from proxy.rewrite.select import column_reader

    if not residuals:
        return None
    planned: list[Atom] = []
    seen: dict[tuple[int, int], int] = {}
    for a in residuals:
        key = (id(a.src), a.col.id)
        if key not in seen:
            # read at whatever layer the onion is: no peel for a proxy-side condition
            readers.append(column_reader(ctx, out, a.src, a.col, False))
            seen[key] = len(readers) - 1
        planned.append(replace(a, reader=seen[key]))
    return tuple(planned)


# ---- evaluation at bind time -------------------------------------------------------------------

Keep = Callable[[tuple[Any, ...]], bool]


def bind_residual(atoms: Sequence[Atom], lits: Sequence[Lit], keep: Keep | None) -> Keep:
    """The decoder's row filter: every residual TRUE (and the previous filter, if any)."""
    tests = [_bind(a, lits) for a in atoms]
    if keep is not None:
        tests.append(keep)
    return lambda row: all(t(row) is True for t in tests)


def _bind(a: Atom, lits: Sequence[Lit]) -> Callable[[tuple[Any, ...]], bool | None]:
    i, neg = a.reader, a.negated
    if a.kind == "like":
        pat, esc = a.lits
        assert pat is not None
        escape = _escape(lits[esc]) if esc is not None else "\\"
        if a.binary:  # MariaDB compares the bytes: `_` is one byte of the UTF-8 text
            if not escape.isascii():
                raise Unsupported("LIKE BINARY with a non-ASCII ESCAPE character")
            bmatch = like_matcher(_bytes(lits[pat].value), escape)
            test: Callable[[Any], bool] = lambda v: bmatch(_bytes(v)) is not None  # noqa: E731
        else:
            matcher = like_matcher(lits[pat].value, escape)
            test = lambda v: matcher(v) is not None  # noqa: E731
    else:
        values = [column_value(a.col, lits[x], False, store=False) for x in a.lits if x is not None]
        if a.kind == "between":
            lo, hi = values
            test = lambda v: pad_space_cmp(v, lo) >= 0 and pad_space_cmp(v, hi) <= 0  # noqa: E731
        else:
            k, cmp = values[0], _CMP[a.op]
            test = lambda v: cmp(pad_space_cmp(v, k))  # noqa: E731

    def run(row: tuple[Any, ...]) -> bool | None:
        v = row[i]
        if v is None:
            return None
        return test(v) != neg

    return run


_CMP: dict[str, Callable[[int], bool]] = {
    "<": lambda c: c < 0,
    "<=": lambda c: c <= 0,
    ">": lambda c: c > 0,
    ">=": lambda c: c >= 0,
}


def _escape(lit: Lit) -> str:
    """ESCAPE '' is MariaDB's default, the backslash. `%` / `_` as escape characters
    interact with the wildcards in ways my_wildcmp does not make uniform: refused."""
    if not lit.is_string:  # a plan made for ESCAPE 'x', bound to a statement with ESCAPE 5
        raise Unsupported("ESCAPE other than a quoted character")
    v = lit.value
    if v == "":
        return "\\"
    if len(v) != 1:
        from proxy.rewrite.errors import BadValue

        raise BadValue(1210, "HY000", "Incorrect arguments to ESCAPE")
    if v in "%_":
        raise Unsupported("ESCAPE '%' or '_' on an encrypted column")
    return v


def like_matcher(pattern: str, escape: str = "\\") -> Callable[[str], Any]:
    """MariaDB's LIKE under a binary collation, as a compiled regular expression over code
    points: `%` any run, `_` one character, the escape character makes the next one literal
    (at the end of the pattern it stands for itself); no padding, case-sensitive."""
    parts: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "%":
            parts.append(".*")
        elif ch == escape and i + 1 < n:
            i += 1
            parts.append(re.escape(pattern[i]))
        elif ch == "_":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
        i += 1
    return re.compile("".join(parts), re.DOTALL).fullmatch


def _bytes(text: str) -> str:
    """UTF-8 bytes as one code point each: like_matcher then compares bytes (LIKE BINARY)."""
    return text.encode("utf-8").decode("latin-1")


def checks_hold(checks: Sequence[tuple[int, bool]], lits: Sequence[Lit]) -> bool:
    """A cached template's LIKE decisions still hold for these literals."""
    return all(
        i < len(lits) and lits[i].is_string and is_word_pattern(lits[i].value) == word
        for i, word in checks
    )


# ---- UPDATE / DELETE: the matching rows' IVs first ---------------------------------------------


@dataclass
class ResidualWrite:
    """UPDATE / DELETE with residuals, as a read-modify-write in one transaction: SELECT the
    residual columns' IVs and values of the rows the server conjuncts match (FOR UPDATE),
    keep those whose residuals are TRUE, then run the statement restricted to
    `(<server conjuncts>) AND c_iv IN (<their IVs>) ...` per residual column. Exact because
    one column's IV determines its value (every write draws a fresh IV per row, or one IV
    for rows it gives one value), so `c_iv IN S` holds exactly for the rows whose c
    satisfies the residual, among those the server conjuncts select."""

    select: list[Segment]
    readers: list[ReaderSpec]
    atoms: tuple[Atom, ...]
    ivs: list[tuple[int, str]]  # (row position of a residual column's IV, its backend name)
    head: list[Segment]  # "UPDATE t SET ..." / "DELETE FROM t"
    where: list[Segment]  # " WHERE (c1) AND (c2)" for the server conjuncts, or []

    def write_guards(self) -> tuple[Any, ...]:
        from proxy.rewrite.plan import write_guards

        return write_guards(self.head)

    def bind(self, b: Any) -> Any:
        from proxy.rewrite.plan import ReadModifyWrite, hexlit

        select_sql = b.render(self.select)
        head, where = b.render(self.head), b.render(self.where)
        readers = [r.make(b.crypto) for r in self.readers]
        keep = bind_residual(self.atoms, b.lits, None)
        ivs = self.ivs

        def finish(rows: Sequence[Sequence[Any]]) -> str | None:
            kept: list[dict[bytes, None]] = [{} for _ in ivs]
            for row in rows:
                if not keep(tuple(r(row) for r in readers)):
                    continue
                for n, (pos, _) in enumerate(ivs):
                    if row[pos] is None:  # never written without one: do not guess
                        raise Unsupported("a row without an IV, matched by a proxy-side condition")
                    kept[n][bytes(row[pos])] = None
            if not kept or not kept[0]:
                return None
            restrict = " AND ".join(
                f"{name} IN ({', '.join(hexlit(iv) for iv in k)})"
                for (_, name), k in zip(ivs, kept, strict=True)
            )
            return f"{head}{where}{' AND ' if where else ' WHERE '}{restrict}"

        return ReadModifyWrite(select_sql, finish)


def write_template(
    node: exp.Expression,
    ctx: Ctx,
    src: Source,
    table_sql: str,
    server: list[exp.Expression],
    residuals: list[Atom],
    head: list[Segment],
) -> Template:
    from proxy.rewrite.select import _Out, _select_list

    if node.args.get("order") is not None or node.args.get("limit") is not None:
        raise Unsupported(
            f"ORDER BY / LIMIT in {node.key.upper()} with a condition the proxy evaluates"
        )
    scope = Scope([src])
    where = server_where(server, ctx, scope)
    out = _Out()
    ivs: list[tuple[int, str]] = []
    seen: set[int] = set()
    for a in residuals:
        if a.col.id not in seen:
            seen.add(a.col.id)
            ivs.append((out.add([src.col(a.col.iv_name)]), src.col(a.col.iv_name)))
    # hidden readers after the IVs: the atoms' positions index the readers' values
    readers: list[ReaderSpec] = []
    atoms = add_readers(residuals, ctx, out, readers)
    assert atoms is not None
    select: list[Segment] = ["SELECT ", *_select_list(out), " FROM ", table_sql, *where]
    select.append(" FOR UPDATE")
    spec = ResidualWrite(select, readers, atoms, ivs, head, where)
    return Template(rmw=spec)
