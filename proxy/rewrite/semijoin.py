"""Correlated [NOT] EXISTS that ties the subquery to the outer row by one equality, as an
uncorrelated IN (what Django's `Exists(OuterRef("pk"))` and ORMs' semi-joins write):

    EXISTS (SELECT ... FROM T WHERE T.i = outer.o AND rest [LIMIT n])
        ->  (outer.o IS NOT NULL AND outer.o IN (SELECT T.i FROM T WHERE rest AND T.i IS NOT NULL))

Both sides are TRUE or FALSE, never NULL, for every row (a NULL o matches no row; the inner
NULLs are dropped, so IN cannot answer NULL), so the rewrite is exact under NOT, OR and
anywhere else a condition may stand. The IN is then decided like any other
(proxy.rewrite.subquery): the inner statement runs first and its values reach the server
only encrypted for o's column, or not at all. Anything else correlated is left as it is,
and refused there.
"""

from __future__ import annotations

from sqlglot import exp

from proxy.rewrite.residual import conjuncts as _conjuncts
from proxy.rewrite.select import AGGREGATES


def decorrelate(outer_names: set[str], subqueries: list[exp.Expression]) -> None:
    """Rewrite, in place, each EXISTS among `subqueries` (the statement's own) that fits."""
    for sq in subqueries:
        if isinstance(sq, exp.Exists) and isinstance(sq.this, exp.Select):
            replacement = _as_in(sq.this, outer_names)
            if replacement is not None:
                sq.replace(replacement)


def _as_in(inner: exp.Select, outer_names: set[str]) -> exp.Expression | None:
    if any(inner.args.get(k) for k in ("group", "having", "distinct", "locks", "with")):
        return None
    if any(e.find(*AGGREGATES) for e in inner.expressions):
        return None  # EXISTS (SELECT COUNT(*) ...) holds even when no row matches
    limit = inner.args.get("limit")
    if limit is not None and not _positive_literal(limit.expression):
        return None  # LIMIT 0 (or a computed one): existence would change
    inner_names = _names(inner)
    where = inner.args.get("where")
    conjuncts = _conjuncts(where.this) if where is not None else []
    ties = []
    for i, c in enumerate(conjuncts):
        pair = _tie(c, outer_names, inner_names)
        if pair is not None:
            ties.append((i, pair))
    if len(ties) != 1:
        return None
    at, (outer_col, inner_col) = ties[0]
    rest = [c for i, c in enumerate(conjuncts) if i != at]
    if any(_mentions(c, outer_names, inner_names) for c in rest):
        return None
    cond: exp.Expression = exp.Not(this=exp.Is(this=inner_col.copy(), expression=exp.Null()))
    for c in reversed(rest):
        cond = exp.And(this=c.copy(), expression=cond)
    new = inner.copy()
    new.set("expressions", [inner_col.copy()])
    new.set("where", exp.Where(this=cond))
    new.set("limit", None)
    new.set("order", None)
    test = exp.In(this=outer_col.copy(), query=exp.Subquery(this=new))
    not_null = exp.Not(this=exp.Is(this=outer_col.copy(), expression=exp.Null()))
    return exp.Paren(this=exp.And(this=not_null, expression=test))


def _positive_literal(e: exp.Expression | None) -> bool:
    return isinstance(e, exp.Literal) and not e.is_string and e.this.isdigit() and int(e.this) > 0


def _names(inner: exp.Select) -> set[str]:
    sources = []
    from_ = inner.args.get("from_")
    if from_ is not None:
        sources.append(from_.this)
    sources += [j.this for j in inner.args.get("joins") or []]
    return {s.alias_or_name for s in sources if isinstance(s, exp.Table)}


def _column(e: exp.Expression) -> exp.Column | None:
    while isinstance(e, exp.Paren):
        e = e.this
    return e if isinstance(e, exp.Column) and isinstance(e.this, exp.Identifier) else None


def _is_outer(c: exp.Column, outer_names: set[str], inner_names: set[str]) -> bool:
    # A name both statements use means the inner table (SQL's scoping).
    return bool(c.table) and c.table in outer_names and c.table not in inner_names


def _tie(
    c: exp.Expression, outer_names: set[str], inner_names: set[str]
) -> tuple[exp.Column, exp.Column] | None:
    """(outer column, inner column) of `inner = outer`, written either way round."""
    if not isinstance(c, exp.EQ):
        return None
    a, b = _column(c.this), _column(c.expression)
    if a is None or b is None:
        return None
    if _is_outer(b, outer_names, inner_names) and not _is_outer(a, outer_names, inner_names):
        return b, a
    if _is_outer(a, outer_names, inner_names) and not _is_outer(b, outer_names, inner_names):
        return a, b
    return None


def _mentions(c: exp.Expression, outer_names: set[str], inner_names: set[str]) -> bool:
    return any(_is_outer(col, outer_names, inner_names) for col in c.find_all(exp.Column))
