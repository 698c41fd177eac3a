"""A seeded generator of UNION [ALL | DISTINCT] statements over tests/subquery_workload.py's
encrypted tables r, q and j, for the differential oracles (not a test module). Branch
columns at one position have one declared type (INT, VARCHAR(n) utf8mb4_bin, DATE, or one
aggregate); an ORDER BY names every result column, so ordered results are determined.
"""

from __future__ import annotations

from tests.rewrite_workload import Statement
from tests.subquery_workload import SubqueryWorkload

# kind -> (table, column) with that declared type (VARCHAR lengths may differ)
COLUMNS = {
    "int": [("r", "a"), ("r", "id"), ("r", "m"), ("r", "p"), ("q", "k"), ("q", "a"),
            ("q", "g"), ("q", "p"), ("j", "g")],
    "text": [("r", "s"), ("r", "w"), ("q", "s"), ("j", "v")],
    "date": [("r", "t"), ("q", "t")],
}  # fmt: skip
TABLE_WHERE = {"r": "r", "q": "q", "j": "j"}

REFUSED_UNION = [
    ("SELECT a FROM r UNION SELECT b FROM r", "different types"),
    ("SELECT a FROM r UNION SELECT s FROM q", "different types"),
    ("SELECT a FROM r UNION SELECT k FROM pl", "other tables"),
    ("SELECT a FROM r UNION SELECT k FROM q ORDER BY a + 1", "ORDER BY"),
    ("SELECT a FROM r INTERSECT SELECT k FROM q", "INTERSECT"),
]


class UnionWorkload(SubqueryWorkload):
    def _branch(self, kinds: list[str], paren: bool) -> str:
        r = self.rng
        table = r.choice(["r", "q", "j"])
        if any(not [c for t, c in COLUMNS[k] if t == table] for k in kinds):
            table = "r" if "date" in kinds or r.random() < 0.5 else "q"
            if "date" not in kinds and r.random() < 0.3:
                table = "q"
        cols = [r.choice([c for t, c in COLUMNS[k] if t == table]) for k in kinds]
        where = self._inner_where(table) if table != "r" else self.where(0.6)
        if r.random() < 0.1 and table == "r":
            where += (" AND " if where else " WHERE ") + "a IN (SELECT a FROM q WHERE k < 6)"
        sql = f"SELECT {', '.join(cols)} FROM {table}{where}"
        if paren:
            keys = ", ".join(f"{c}{r.choice(['', ' DESC'])}" for c in cols)
            sql = f"({sql} ORDER BY {keys} LIMIT {r.randint(0, 4)})"
        return sql

    def union_statement(self) -> Statement:
        r = self.rng
        if r.random() < 0.12:
            agg = r.choice(["COUNT(*)", "SUM(a)", "MAX(a)", "MIN(t)"])
            tables = ["r", "q"] if agg != "MIN(t)" or r.random() < 0.5 else ["q", "r"]
            sql = " UNION ALL ".join(f"SELECT {agg} FROM {t}{self._inner_where(t)}" for t in tables)
            return Statement(sql, "rows")
        kinds = [r.choice(["int", "int", "text", "date"]) for _ in range(r.randint(1, 2))]
        paren = r.random() < 0.15
        parts = [self._branch(kinds, paren)]
        for _ in range(r.randint(1, 2)):
            parts.append(r.choice([" UNION ", " UNION ALL ", " UNION DISTINCT "]))
            parts.append(self._branch(kinds, paren))
        sql = "".join(parts)
        ordered = r.random() < 0.5
        if ordered:
            keys = [f"{i + 1}{r.choice(['', ' DESC'])}" for i in range(len(kinds))]
            first = parts[0].lstrip("(").split(" FROM ")[0][len("SELECT ") :].split(", ")
            if r.random() < 0.4 and len(set(first)) == len(first):  # the first branch's names
                keys = [f"{n}{r.choice(['', ' DESC'])}" for n in first]
            sql += " ORDER BY " + ", ".join(keys)
            if r.random() < 0.5:
                sql += f" LIMIT {r.randint(0, 6)}"
                if r.random() < 0.3:
                    sql += f" OFFSET {r.randint(0, 3)}"
        return Statement(sql, "ordered" if ordered else "rows", ordered=ordered)
