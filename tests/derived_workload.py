"""A seeded generator of SELECTs over derived tables, for the differential oracles (not a test
module). Tables as tests/subquery_workload.py's (`r`, `q`, `j` encrypted, `pl` plain).

An inner SELECT on r (its WHERE from tests/rewrite_workload.py; merged by MariaDB, or
materialized by DISTINCT, GROUP BY, ORDER BY + LIMIT or a UNION), under an outer query the
proxy evaluates: COUNT(*), `*` with conditions, ORDER BY and LIMIT, GROUP BY with aggregates
and HAVING, DISTINCT, ungrouped aggregates, constants, a derived table in a derived table,
and a query over a derived table as an IN subquery. Orders are total on what is selected,
so ORDER BY + LIMIT has one answer. GROUP BY / DISTINCT over a merged derived table avoid
indexed columns (a, id): MariaDB then groups through an index or not at all, which changes
the metadata's org_table (docs/rewrite.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.rewrite_workload import Statement
from tests.subquery_workload import SubqueryWorkload


@dataclass(frozen=True)
class Out:
    name: str  # as the derived table names it
    base: str  # r's column whose values it holds (for constants); "" for a count
    kind: str  # int | text | date | dec | dt


R_COLUMNS = {"id": "int", "a": "int", "b": "int", "s": "text", "d": "dec", "t": "date"}
R_COLUMNS |= {"dt": "dt", "u": "int", "m": "int", "p": "int"}
UNINDEXED = ["b", "s", "d", "t", "u", "m", "p"]
NUMERIC = ("int", "dec")

REFUSED_DERIVED = [
    ("SELECT x.a + 1 FROM (SELECT a FROM r) AS x", "ADD"),
    ("SELECT UPPER(x.s) FROM (SELECT s FROM r) AS x", "UPPER"),
    ("SELECT * FROM (SELECT a FROM r) AS x JOIN q ON q.a = x.a", "joined"),
    ("SELECT * FROM (SELECT a FROM r) AS x, q", "joined"),
    ("SELECT * FROM (SELECT s FROM r) AS x WHERE x.s LIKE 'a%'", "LIKE"),
    ("SELECT * FROM (SELECT a FROM r) AS x WHERE x.a IN (SELECT a FROM q)", "subqueries"),
    ("SELECT x.a, COUNT(*) FROM (SELECT a, s FROM r) AS x GROUP BY x.s", "neither grouped"),
    ("SELECT SUM(x.s) FROM (SELECT s FROM r) AS x", "non-numeric"),
    ("SELECT SUM(DISTINCT x.a) FROM (SELECT a FROM r) AS x", "SUM"),
    ("SELECT * FROM (SELECT a FROM r) AS x (y)", "column list"),
    # the outer query's rows are the proxy's choice: no COUNT or plain value to the server
    ("SELECT id FROM r WHERE p IN (SELECT COUNT(*) FROM (SELECT a FROM q) AS y)", "proxy selects"),
    ("UPDATE r SET p = (SELECT MAX(y.p) FROM (SELECT p FROM q) AS y)", "proxy selects"),
    ("INSERT INTO pl (k) SELECT COUNT(*) FROM (SELECT a FROM r) AS y", "proxy selects"),
    ("SELECT k FROM pl WHERE a IN (SELECT y.a FROM (SELECT a FROM r) AS y)", "plaintext"),
    ("DELETE FROM r WHERE id IN (SELECT * FROM (SELECT a FROM r) AS y)", "plaintext"),
    # which ids make the cut may be the proxy's sort of decrypted text (m: min=DET)
    (
        "DELETE FROM r WHERE id IN (SELECT * FROM (SELECT id FROM r ORDER BY s LIMIT 2) AS y)",
        "ORDER BY encrypted column s",
    ),
    ("UPDATE r SET p = 1 WHERE id = (SELECT id FROM r ORDER BY m DESC LIMIT 1)", "ORDER BY"),
]


class DerivedWorkload(SubqueryWorkload):
    def inner(self) -> tuple[str, list[Out], bool]:
        """(inner SELECT, its columns, whether MariaDB merges it)."""
        r = self.rng
        roll = r.random()
        if roll < 0.15:  # GROUP BY: aggregates as columns
            g = r.choice(UNINDEXED)
            cols = [Out(g, g, R_COLUMNS[g]), Out("n", "", "int")]
            aggs = [f"{g}", "COUNT(*) AS n"]
            if r.random() < 0.5:
                aggs.append("MAX(a) AS mx")
                cols.append(Out("mx", "a", "int"))
            if r.random() < 0.4:
                aggs.append("SUM(d) AS sd")
                cols.append(Out("sd", "d", "dec"))
            return f"SELECT {', '.join(aggs)} FROM r{self.where(0.5)} GROUP BY {g}", cols, False
        if roll < 0.22:  # UNION: materialized, columns named by the first branch
            c = r.choice(["a", "s", "t"])
            other = {"a": "q", "s": "j", "t": "q"}[c]
            col2 = "v" if other == "j" else c
            all_ = " ALL" if r.random() < 0.5 else ""
            sql = f"SELECT {c} FROM r{self.where(0.5)} UNION{all_} SELECT {col2} FROM {other}"
            return sql, [Out(c, c, R_COLUMNS[c])], False
        names = r.sample(list(R_COLUMNS), r.randint(1, 4))
        cols, items = [], []
        for n in names:
            if r.random() < 0.15:
                items.append(f"{n} AS {n}_x")
                cols.append(Out(f"{n}_x", n, R_COLUMNS[n]))
            else:
                items.append(n)
                cols.append(Out(n, n, R_COLUMNS[n]))
        sql = f"SELECT {', '.join(items)} FROM r{self.where(0.6)}"
        roll = r.random()
        if roll < 0.2:
            return sql.replace("SELECT ", "SELECT DISTINCT ", 1), cols, False
        if roll < 0.4:
            key = r.choice(["a", "s", "t", "d", "m"])
            desc = " DESC" if r.random() < 0.5 else ""
            return f"{sql} ORDER BY {key}{desc}, id LIMIT {r.randint(0, 12)}", cols, False
        return sql, cols, True

    def outer_atom(self, cols: list[Out]) -> str:
        r = self.rng
        c = r.choice(cols)
        ref = f"x.{c.name}"
        if c.base == "" or r.random() < 0.15:
            if c.base == "":
                return f"{ref} {r.choice(['>', '>=', '=', '<>'])} {r.randint(0, 3)}"
            return f"{ref} IS {'NOT ' if r.random() < 0.5 else ''}NULL"
        roll = r.random()
        if roll < 0.4:
            op = r.choice(["=", "<>", "<=>"])
            return f"{ref} {op} {self.value(c.base, nullable=r.random() < 0.2)}"
        if roll < 0.55:
            items = ", ".join(self.value(c.base, nullable=False) for _ in range(r.randint(1, 3)))
            return f"{ref} {'NOT ' if r.random() < 0.3 else ''}IN ({items})"
        if roll < 0.85:
            return f"{ref} {r.choice(['<', '<=', '>', '>='])} {self.value(c.base, nullable=False)}"
        lo, hi = self.value(c.base, nullable=False), self.value(c.base, nullable=False)
        return f"{ref} BETWEEN {lo} AND {hi}"

    def outer_where(self, cols: list[Out]) -> str:
        r = self.rng
        if r.random() < 0.45:
            return ""
        cond = self.outer_atom(cols)
        if r.random() < 0.4:
            cond = f"({cond} {r.choice(['AND', 'OR'])} {self.outer_atom(cols)})"
        if r.random() < 0.1:
            cond = f"NOT {cond}"
        return f" WHERE {cond}"

    def derived_statement(self) -> Statement:
        r = self.rng
        inner, cols, merged = self.inner()
        src = f"FROM ({inner}) AS x"
        where = self.outer_where(cols)
        roll = r.random()
        # Grouping over a merged derived table: unindexed columns only (module docstring).
        groupable = [c for c in cols if not merged or c.base in UNINDEXED]
        if roll < 0.15:
            return Statement(f"SELECT COUNT(*) {src}{where}", "agg")
        if roll < 0.4:
            order = ", ".join(f"{c.name}{r.choice(['', ' DESC'])}" for c in cols)
            if r.random() < 0.5:
                limit = f" LIMIT {r.randint(0, 6)}" + (
                    f" OFFSET {r.randint(0, 3)}" if r.random() < 0.3 else ""
                )
                return Statement(f"SELECT * {src}{where} ORDER BY {order}{limit}", "ordered", True)
            return Statement(f"SELECT * {src}{where}", "rows")
        if roll < 0.6 and groupable:
            g = r.choice(groupable)
            items = [f"x.{g.name}", "COUNT(*)"]
            nums = [c for c in cols if c.kind in NUMERIC and c is not g]
            for c in r.sample(nums, min(len(nums), r.randint(0, 2))):
                items.append(f"{r.choice(['SUM', 'AVG', 'MIN', 'MAX'])}(x.{c.name})")
            having = ""
            if r.random() < 0.4:
                having = f" HAVING COUNT(*) {r.choice(['>', '>=', '='])} {r.randint(1, 3)}"
            ordered = r.random() < 0.5
            order = f" ORDER BY x.{g.name}{r.choice(['', ' DESC'])}" if ordered else ""
            sql = f"SELECT {', '.join(items)} {src}{where} GROUP BY x.{g.name}{having}{order}"
            return Statement(sql, "grouped", ordered)
        if roll < 0.72 and groupable:
            c = r.choice(groupable)
            ordered = r.random() < 0.5
            order = f" ORDER BY x.{c.name}{r.choice(['', ' DESC'])}" if ordered else ""
            return Statement(f"SELECT DISTINCT x.{c.name} {src}{where}{order}", "distinct", ordered)
        if roll < 0.85:
            items = []
            for c in r.sample(cols, min(len(cols), 3)):
                fns = ["COUNT", "MIN", "MAX"] + (["SUM", "AVG"] if c.kind in NUMERIC else [])
                if c.kind != "text" or c.base:
                    fns.append("COUNT(DISTINCT")
                fn = r.choice(fns)
                arg = f" x.{c.name})" if fn.endswith("DISTINCT") else f"(x.{c.name})"
                items.append(fn + arg)
            return Statement(f"SELECT {', '.join(items)} {src}{where}", "agg")
        if roll < 0.9:
            return Statement(f"SELECT 1 AS a {src}{where} LIMIT 1", "rows")
        if roll < 0.95:  # a derived table in a derived table
            c = r.choice(cols)
            return Statement(
                f"SELECT COUNT(*), MAX(y.{c.name}) FROM (SELECT * {src}{where}) AS y", "agg"
            )
        # as a subquery: the values compared with an encrypted column (r.a)
        return Statement(f"SELECT id FROM r WHERE a IN (SELECT x.a {_a_source(self)})", "rows")


def _a_source(work: DerivedWorkload) -> str:
    return f"FROM (SELECT a FROM q{work.where(0.0)} ORDER BY k LIMIT {work.rng.randint(1, 9)}) AS x"
