"""A seeded generator of statements with subqueries, for the differential oracles (not a test
module). Tables: `r` (tests/rewrite_workload.py's, encrypted), `q` and `j` (encrypted; q.g
and j.g in one join group), `pl` (a table the proxy did not create: plain on the backend).

Every statement is one the proxy must run like MariaDB: subquery values compared with an
encrypted column, or plain values anywhere. REFUSED lists those it must refuse.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from tests.rewrite_workload import Statement, Workload

DDL_Q = """CREATE TABLE q (
  k INT NOT NULL PRIMARY KEY,
  a INT,
  s VARCHAR(24) COLLATE utf8mb4_bin,
  t DATE,
  g INT COMMENT 'cryptdb: join=jg',
  p INT COMMENT 'cryptdb: plain'
)"""
DDL_J = """CREATE TABLE j (
  g INT COMMENT 'cryptdb: join=jg',
  v VARCHAR(24) COLLATE utf8mb4_bin
)"""
DDL_PL = """CREATE TABLE pl (k INT, a INT, s VARCHAR(24) COLLATE utf8mb4_bin, t DATE)"""

WORDS = ["alpha", "Beta", "gamma", "zeta", "Eta", "theta9", "ioTa"]


@dataclass(frozen=True)
class Col:
    table: str
    name: str
    kind: str  # int | text | date
    encrypted: bool
    ordered: bool = True  # <, > and MIN / MAX on it


# Outer targets (columns of r) and inner sources, by kind. Not r.b: MariaDB 10.11 answers
# `b NOT IN (SELECT a FROM pl)` wrongly for b = 10**12 beyond pl.a's INT range when the
# subquery holds a NULL (its materialized lookup finds "no match" instead of NULL).
TARGETS = [
    Col("r", "a", "int", True),
    Col("r", "id", "int", False),
    Col("r", "m", "int", True, ordered=False),
    Col("r", "s", "text", True, ordered=False),
    Col("r", "t", "date", True),
    Col("r", "p", "int", False),
]
SOURCES = [
    Col("q", "k", "int", True),
    Col("q", "a", "int", True),
    Col("q", "g", "int", True, ordered=False),
    Col("q", "p", "int", False),
    Col("q", "s", "text", True, ordered=False),
    Col("q", "t", "date", True),
    Col("j", "g", "int", True, ordered=False),
    Col("j", "v", "text", True, ordered=False),
    Col("pl", "k", "int", False),
    Col("pl", "a", "int", False),
    Col("pl", "s", "text", False, ordered=False),
    Col("pl", "t", "date", False),
    Col("r", "a", "int", True),
    Col("r", "s", "text", True, ordered=False),
    Col("r", "p", "int", False),
]

REFUSED = [
    # correlated
    ("SELECT id FROM r WHERE a IN (SELECT a FROM q WHERE q.k = r.id)", "correlated"),
    ("SELECT id FROM r AS x WHERE EXISTS (SELECT * FROM q WHERE q.a < x.a)", "correlated"),
    ("SELECT id FROM r WHERE a = (SELECT MAX(a) FROM q WHERE k = id)", "correlated"),
    ("DELETE FROM r WHERE EXISTS (SELECT 1 FROM q WHERE q.a = r.a AND q.p = r.p)", "correlated"),
    # tied by one equality it is decided as an IN: then its values are the inner column's
    ("DELETE FROM r WHERE EXISTS (SELECT 1 FROM q WHERE q.k = r.id)", "plaintext"),
    # a query over a derived table: its rows are selected by the proxy (tests/derived_workload.py)
    ("SELECT id FROM r WHERE p IN (SELECT COUNT(*) FROM (SELECT a FROM q) AS y)", "proxy selects"),
    ("SELECT id FROM r WHERE p IN (SELECT y.a FROM (SELECT a FROM q) AS y)", "plaintext"),
    # encrypted values that would reach the server in plaintext
    ("SELECT id FROM r WHERE p IN (SELECT a FROM q)", "plaintext"),
    ("SELECT k FROM pl WHERE a IN (SELECT a FROM r)", "plaintext"),
    ("SELECT id FROM r WHERE p = (SELECT MAX(a) FROM q)", "plaintext"),
    ("UPDATE r SET p = (SELECT MIN(a) FROM q)", "plaintext"),
    ("SELECT id FROM r WHERE id IN (SELECT * FROM j)", "plaintext"),
    # rows the proxy selects (a range on encrypted text, HAVING): even a COUNT, a plain
    # column's values or emptiness would tell the server what it cannot compute
    ("SELECT id FROM r WHERE p = (SELECT COUNT(*) FROM q WHERE s < 'm')", "proxy selects"),
    ("UPDATE r SET p = (SELECT COUNT(*) FROM q WHERE s < 'm')", "proxy selects"),
    ("SELECT id FROM r WHERE p IN (SELECT p FROM q WHERE s LIKE 'a%')", "proxy selects"),
    ("SELECT id FROM r WHERE EXISTS (SELECT 1 FROM q WHERE s BETWEEN 'a' AND 'f')",
     "proxy selects"),
    ("SELECT id FROM r WHERE p IN (SELECT COUNT(*) FROM q GROUP BY a HAVING SUM(a) > 9)",
     "proxy selects"),
    # elsewhere
    ("SELECT a, (SELECT MAX(a) FROM q) + 1 FROM r", "select list"),
    ("SELECT a, (SELECT COUNT(*) FROM pl) FROM r", "select list"),
    ("SELECT *, (SELECT MAX(a) FROM q) FROM r", "select list"),
    ("SELECT a, (SELECT MAX(a) FROM q) AS m FROM r ORDER BY m", "ORDER"),
    ("SELECT id FROM r WHERE p > ANY (SELECT a FROM q)", "plaintext"),
    ("SELECT id FROM r WHERE a > ANY (SELECT a FROM q WHERE q.k = r.id)", "correlated"),
    ("SELECT id FROM r WHERE (SELECT MAX(a) FROM q) = (SELECT MIN(a) FROM q)", "column"),
]


class SubqueryWorkload(Workload):
    """Workload's values and conditions on r, plus subqueries over q, j, pl and r."""

    def insert_q(self, k: int) -> str:
        return (
            f"INSERT INTO q (k, a, s, t, g, p) VALUES ({k}, {self._int()}, {self._text()}, "
            f"{self._date()}, {self._int()}, {self._int()})"
        )

    def insert_j(self) -> str:
        return f"INSERT INTO j (g, v) VALUES ({self._int()}, {self._text()})"

    def insert_pl(self, k: int) -> str:
        return (
            f"INSERT INTO pl (k, a, s, t) VALUES ({k}, {self._int()}, {self._text()}, "
            f"{self._date()})"
        )

    def _int(self) -> str:
        r = self.rng
        return "NULL" if r.random() < 0.12 else str(r.randint(-6, 8))

    def _text(self) -> str:
        r = self.rng
        return "NULL" if r.random() < 0.12 else self._quote(r.choice(WORDS))

    def _date(self) -> str:
        r = self.rng
        if r.random() < 0.12:
            return "NULL"
        return self._quote((dt.date(2020, 1, 1) + dt.timedelta(days=r.randint(0, 12))).isoformat())

    def _const(self, kind: str) -> str:
        return {"int": self._int, "text": self._text, "date": self._date}[kind]()

    # ---- inner statements ----------------------------------------------------------------

    def _inner_where(self, table: str) -> str:
        r = self.rng
        if r.random() < 0.3:
            return ""
        cols = {
            "q": [("k", "int"), ("a", "int"), ("s", "text"), ("t", "date"), ("p", "int")],
            "j": [("g", "int"), ("v", "text")],
            "q JOIN j": [("j.v", "text"), ("q.k", "int")],
            "pl": [("k", "int"), ("a", "int"), ("s", "text"), ("t", "date")],
            "r": [("a", "int"), ("s", "text"), ("t", "date"), ("p", "int")],
        }[table]
        name, kind = r.choice(cols)
        roll = r.random()
        if roll < 0.2:
            return f" WHERE {name} IS {r.choice(['', 'NOT '])}NULL"
        const = self._const(kind)
        if const == "NULL":
            const = {"int": "3", "text": "'zeta'", "date": "'2020-01-05'"}[kind]
        if roll < 0.5 or kind == "text" or (table, name) == ("j", "g"):
            return f" WHERE {name} {r.choice(['=', '<>'])} {const}"
        return f" WHERE {name} {r.choice(['<', '<=', '>', '>='])} {const}"

    def _source(self, kind: str, target: Col) -> Col:
        pool = [s for s in SOURCES if s.kind == kind and (target.encrypted or not s.encrypted)]
        return self.rng.choice(pool)

    def in_subquery(self, target: Col) -> str:
        src = self._source(target.kind, target)
        neg = "NOT " if self.rng.random() < 0.35 else ""
        inner = f"SELECT {src.name} FROM {src.table}{self._inner_where(src.table)}"
        if src.table == "q" and src.name == "g" and self.rng.random() < 0.5:
            inner = f"SELECT q.g FROM q JOIN j ON q.g = j.g{self._inner_where('q JOIN j')}"
        return f"{target.name} {neg}IN ({inner})"

    def scalar_subquery(self, target: Col) -> str:
        r = self.rng
        src = self._source(target.kind, target)
        where = self._inner_where(src.table)
        roll = r.random()
        if roll < 0.25 and target.kind == "int":
            inner = f"SELECT COUNT(*) FROM {src.table}{where}"
        elif roll < 0.4 and target.kind == "int" and src.ordered:
            # AVG has decimals an INT column cannot hold: compared exactly all the same
            inner = f"SELECT AVG({src.name}) FROM {src.table}{where}"
        elif roll < 0.7 and src.ordered:
            inner = f"SELECT {r.choice(['MAX', 'MIN'])}({src.name}) FROM {src.table}{where}"
        else:
            desc = r.choice(["", " DESC"])
            inner = f"SELECT {src.name} FROM {src.table}{where} ORDER BY {src.name}{desc} LIMIT 1"
        ops = ["=", "<>", "<=>"] + (["<", "<=", ">", ">="] if target.ordered else [])
        op = r.choice(ops)
        if r.random() < 0.2:
            return f"({inner}) {op} {target.name}"
        return f"{target.name} {op} ({inner})"

    def quantified_subquery(self, target: Col) -> str:
        r = self.rng
        src = self._source(target.kind, target)
        ops = ["=", "<>"] + (["<", "<=", ">", ">="] if target.ordered else [])
        word = r.choice(["ANY", "SOME", "ALL"])
        inner = f"SELECT {src.name} FROM {src.table}{self._inner_where(src.table)}"
        return f"{target.name} {r.choice(ops)} {word} ({inner})"

    def exists_subquery(self) -> str:
        r = self.rng
        table = r.choice(["q", "j", "pl", "r"])
        cols = r.choice(["*", "1" if table == "pl" else "*"])
        neg = "NOT " if r.random() < 0.4 else ""
        where = self._inner_where(table)
        if table == "q" and r.random() < 0.3:
            # Correlated by one equality (Django's Exists(OuterRef)): decided as an IN.
            tie = r.choice(["q.a = r.a", "r.p = q.p", "q.t = r.t", "r.m = q.a"])
            where = f" WHERE {tie}" + (f" AND ({where.removeprefix(' WHERE ')})" if where else "")
        return f"{neg}EXISTS (SELECT {cols} FROM {table}{where})"

    def sub_condition(self) -> str:
        r = self.rng
        roll = r.random()
        target = r.choice(TARGETS)
        if roll < 0.4:
            cond = self.in_subquery(target)
        elif roll < 0.68:
            cond = self.scalar_subquery(target)
        elif roll < 0.82:
            cond = self.quantified_subquery(target)
        else:
            cond = self.exists_subquery()
        if r.random() < 0.35:
            cond = f"({cond} {r.choice(['AND', 'OR'])} {self.atom()})"
        if r.random() < 0.15:
            cond = f"NOT ({cond})"
        return cond

    def subquery_statement(self) -> Statement:
        r = self.rng
        roll = r.random()
        if roll < 0.72:
            cols = ", ".join(r.sample(["id", "a", "b", "s", "t", "m", "p"], r.randint(1, 3)))
            if r.random() < 0.2:
                return Statement(
                    f"SELECT COUNT(*), SUM(a) FROM r WHERE {self.sub_condition()}", "rows"
                )
            return Statement(f"SELECT {cols} FROM r WHERE {self.sub_condition()}", "rows")
        if roll < 0.9:
            col = r.choice(["a", "s", "t", "p"])
            value = self.value(col)
            if r.random() < 0.2 and col in ("a", "s"):
                value = (
                    "(SELECT MAX(a) FROM q)"
                    if col == "a"
                    else "(SELECT s FROM q WHERE s IS NOT NULL ORDER BY s DESC LIMIT 1)"
                )
            return Statement(f"UPDATE r SET {col} = {value} WHERE {self.sub_condition()}", "update")
        return Statement(f"DELETE FROM r WHERE {self.sub_condition()}", "delete")
