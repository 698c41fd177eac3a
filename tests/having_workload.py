"""A seeded generator of GROUP BY ... HAVING statements on tests/rewrite_workload.py's table
`r`, for the differential oracles (not a test module). ORDER BY always ends with the group
column, so an ordered result is fully determined.
"""

from __future__ import annotations

from tests.rewrite_workload import EQ, ORD, SUM, Statement, Workload

COLUMNS_OF_KIND = {"a": "int", "b": "int", "d": "dec", "t": "date", "dt": "dt", "id": "int"}

REFUSED_HAVING = [
    ("SELECT a, COUNT(*) FROM r GROUP BY a HAVING COUNT(*) > (SELECT 1)", "subquer"),
    ("SELECT DISTINCT a FROM r GROUP BY a HAVING a > 1", "HAVING with DISTINCT"),
    ("SELECT a FROM r GROUP BY a HAVING a + 1 > 2", "HAVING"),
]


class HavingWorkload(Workload):
    def _agg(self) -> tuple[str, str]:
        """(an aggregate, the kind of its value: int | dec | ORD column name)."""
        r = self.rng
        roll = r.random()
        if roll < 0.3:
            return "COUNT(*)", "count"
        if roll < 0.4:
            return f"COUNT(DISTINCT {r.choice(EQ)})", "count"
        if roll < 0.65:
            return f"SUM({r.choice(SUM)})", "sum"
        if roll < 0.75:
            return f"AVG({r.choice(['a', 'b', 'd', 'u', 'p'])})", "sum"
        c = r.choice(ORD)
        return f"{r.choice(['MIN', 'MAX'])}({c})", c

    def _agg_atom(self) -> str:
        r = self.rng
        agg, kind = self._agg()
        op = r.choice(["=", "<>", "<", "<=", ">", ">=", "<=>"])
        if kind == "count":
            return f"{agg} {op} {r.randint(0, 4)}"
        if kind == "sum":
            if r.random() < 0.2:
                return f"{agg} IS {r.choice(['', 'NOT '])}NULL"
            return f"{agg} {op} {r.choice(['0', '3', '-2', '10.5', '100'])}"
        if r.random() < 0.25:
            lo, hi = sorted((self.value(kind, nullable=False), self.value(kind, nullable=False)))
            return f"{agg} {r.choice(['', 'NOT '])}BETWEEN {lo} AND {hi}"
        return f"{agg} {op} {self.value(kind, nullable=False)}"

    def _group_atom(self, g: str) -> str:
        r = self.rng
        roll = r.random()
        if roll < 0.3:
            return f"{g} IS {r.choice(['', 'NOT '])}NULL"
        if roll < 0.6:
            items = ", ".join(self.value(g, nullable=r.random() < 0.2) for _ in range(3))
            return f"{g} {r.choice(['', 'NOT '])}IN ({items})"
        return f"{g} {r.choice(['=', '<>', '<=>'])} {self.value(g, nullable=False)}"

    def having(self, g: str, depth: int = 0) -> str:
        r = self.rng
        roll = r.random()
        if depth >= 2 or roll < 0.5:
            return self._agg_atom() if r.random() < 0.75 else self._group_atom(g)
        if roll < 0.85:
            op = r.choice([" AND ", " OR "])
            return f"({self.having(g, depth + 1)}{op}{self.having(g, depth + 1)})"
        return f"NOT ({self.having(g, depth + 1)})"

    def having_statement(self) -> Statement:
        r = self.rng
        g = r.choice(EQ)
        aggs = [self._agg()[0] for _ in range(r.randint(0, 2))]
        alias = ""
        if aggs and r.random() < 0.3:
            alias = " AS n"
        cols = ", ".join([g, *[f"{a}{alias if i == 0 else ''}" for i, a in enumerate(aggs)]])
        cond = self.having(g)
        if alias and r.random() < 0.6:
            cond = f"({cond} OR n IS NULL)" if r.random() < 0.3 else f"(n IS NOT NULL AND {cond})"
        where = self.where(0.4)
        order = ""
        ordered = False
        if r.random() < 0.6:
            keys = [g + r.choice(["", " DESC"])]
            if aggs and r.random() < 0.4:
                keys.insert(0, aggs[0] + r.choice(["", " DESC"]))
            order = " ORDER BY " + ", ".join(keys)
            ordered = True
        limit = ""
        if ordered and r.random() < 0.5:
            limit = f" LIMIT {r.randint(0, 5)}"
            if r.random() < 0.3:
                limit += f" OFFSET {r.randint(0, 3)}"
        sql = f"SELECT {cols} FROM r{where} GROUP BY {g} HAVING {cond}{order}{limit}"
        if not aggs and r.random() < 0.15:  # no GROUP BY: one group
            agg = self._agg()[0]
            sql = f"SELECT {agg} FROM r{where} HAVING {self._agg_atom()}"
            ordered = False
        return Statement(sql, "ordered" if ordered else "rows", ordered=ordered)
