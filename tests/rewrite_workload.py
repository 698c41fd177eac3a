"""A seeded generator of statements for the differential oracle (not a test module).

Every statement it makes is one the rewriter supports on the schema below, so any refusal,
error or differing result on the encrypted side is a bug. Text columns are declared
utf8mb4_bin: DET equality is binary, and the proxy's sort emulates that collation.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

DDL = """CREATE TABLE r (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  a INT,
  b BIGINT NOT NULL DEFAULT 7,
  s VARCHAR(24) COLLATE utf8mb4_bin,
  w VARCHAR(40) COLLATE utf8mb4_bin COMMENT 'cryptdb: onions=eq,search',
  d DECIMAL(8,2),
  t DATE,
  dt DATETIME(3),
  u SMALLINT UNSIGNED COMMENT 'cryptdb: onions=eq,add',
  h INT COMMENT 'cryptdb: onions=add',
  m INT COMMENT 'cryptdb: min=DET',
  p INT COMMENT 'cryptdb: plain',
  KEY ka (a),
  KEY kdt (dt, a)
) ENGINE=InnoDB"""

COLUMNS = ["id", "a", "b", "s", "w", "d", "t", "dt", "u", "h", "m", "p"]
INSERTABLE = COLUMNS[1:]
EQ = ["id", "a", "b", "s", "w", "d", "t", "dt", "u", "m", "p"]  # =, <>, IN, GROUP BY, DISTINCT
ORD = ["id", "a", "b", "d", "t", "dt", "p"]  # <, BETWEEN, MIN/MAX, backend ORDER BY
SUM = ["id", "a", "b", "d", "u", "h", "p"]
SORT = ["id", "a", "b", "s", "w", "d", "t", "dt", "u", "m", "p"]  # ORDER BY (proxy or backend)
SELECTABLE = ["id", "a", "b", "s", "w", "d", "t", "dt", "u", "m", "p"]  # h: 3 ms per value

WORDS = ["alpha", "Beta", "gamma", "delta epsilon", "", "zeta", "Eta", "theta9", "ioTa", "Kappa x"]
PHRASE_WORDS = ["red", "fox", "blue", "jumps", "lazy", "dog", "owl"]
BIG = [123456789, -987654321, 2_000_000_001]


@dataclass
class Statement:
    sql: str
    kind: str  # insert | rows | ordered | agg | update | delete
    ordered: bool = False


class Workload:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.used: set[str] = set()  # plaintext values for the leak scan

    # ---- values ------------------------------------------------------------------------

    def value(self, col: str, *, nullable: bool = True) -> str:
        r = self.rng
        if nullable and col != "b" and r.random() < 0.12:
            return "NULL"
        if col == "a":
            v = r.choice([*range(-6, 7), *BIG])
            return str(v)
        if col == "b":
            return str(r.choice([*range(0, 15), 10**12 + r.randint(0, 3)]))
        if col == "s":
            return self._quote(r.choice(WORDS))
        if col == "w":
            words = r.sample(PHRASE_WORDS, r.randint(1, 3))
            return self._quote(" ".join(words))
        if col == "d":
            return f"{r.randint(-2000, 2000) / 100:.2f}"
        if col == "t":
            return self._quote(
                (dt.date(2020, 1, 1) + dt.timedelta(days=r.randint(0, 12))).isoformat()
            )
        if col == "dt":
            base = dt.datetime(2021, 5, 1, 10, 0, 0)
            v = base + dt.timedelta(minutes=r.randint(0, 20), milliseconds=r.choice([0, 5, 250]))
            return self._quote(v.strftime("%Y-%m-%d %H:%M:%S.") + f"{v.microsecond // 1000:03d}")
        if col == "u":
            return str(r.randint(0, 40))
        if col == "h":
            return str(r.randint(-100, 100))
        if col == "m":
            return str(r.randint(0, 8))
        if col == "p":
            return str(r.randint(0, 10))
        if col == "id":
            return str(r.randint(1, 60))
        raise ValueError(col)

    def _quote(self, text: str) -> str:
        if len(text) >= 3:
            self.used.add(text)
        return "'" + text + "'"

    # ---- conditions --------------------------------------------------------------------

    def atom(self) -> str:
        r = self.rng
        roll = r.random()
        if roll < 0.35:
            c = r.choice(EQ)
            return f"{c} {r.choice(['=', '<>', '<=>'])} {self.value(c, nullable=r.random() < 0.3)}"
        if roll < 0.5:
            c = r.choice(EQ)
            items = [self.value(c, nullable=r.random() < 0.3) for _ in range(r.randint(1, 4))]
            neg = "NOT " if r.random() < 0.3 else ""
            return f"{c} {neg}IN ({', '.join(items)})"
        if roll < 0.62:
            c = r.choice(COLUMNS)
            return f"{c} IS {'NOT ' if r.random() < 0.5 else ''}NULL"
        if roll < 0.82:
            c = r.choice(ORD)
            return f"{c} {r.choice(['<', '<=', '>', '>='])} {self.value(c, nullable=False)}"
        if roll < 0.94:
            c = r.choice(ORD)
            lo, hi = sorted(
                (self.value(c, nullable=False), self.value(c, nullable=False)), key=_num
            )
            return f"{c} {'NOT ' if r.random() < 0.2 else ''}BETWEEN {lo} AND {hi}"
        return f"w LIKE '%{r.choice(PHRASE_WORDS)}%'"

    def condition(self, depth: int = 0) -> str:
        r = self.rng
        roll = r.random()
        if depth >= 2 or roll < 0.45:
            return self.atom()
        if roll < 0.85:
            op = r.choice([" AND ", " OR "])
            return f"({self.condition(depth + 1)}{op}{self.condition(depth + 1)})"
        return f"NOT ({self.condition(depth + 1)})"

    def where(self, p: float = 0.8) -> str:
        return f" WHERE {self.condition()}" if self.rng.random() < p else ""

    # ---- statements --------------------------------------------------------------------

    def insert(self) -> Statement:
        r = self.rng
        cols = r.sample(INSERTABLE, r.randint(1, len(INSERTABLE)))
        rows = [
            "(" + ", ".join(self.value(c, nullable=c != "b") for c in cols) + ")"
            for _ in range(r.randint(1, 4))
        ]
        return Statement(f"INSERT INTO r ({', '.join(cols)}) VALUES {', '.join(rows)}", "insert")

    def select(self) -> Statement:
        r = self.rng
        roll = r.random()
        if roll < 0.4:
            cols = "*" if r.random() < 0.04 else ", ".join(r.sample(SELECTABLE, r.randint(1, 5)))
            return Statement(f"SELECT {cols} FROM r{self.where()}", "rows")
        if roll < 0.65:
            cols = ", ".join(r.sample(SELECTABLE, r.randint(1, 4)))
            keys = [f"{c}{r.choice(['', ' DESC'])}" for c in r.sample(SORT, r.randint(1, 2))]
            limit = f" LIMIT {r.randint(0, 8)}" if r.random() < 0.5 else ""
            if limit and r.random() < 0.4:
                limit += f" OFFSET {r.randint(0, 5)}"
            sql = f"SELECT {cols} FROM r{self.where()} ORDER BY {', '.join(keys)}, id{limit}"
            return Statement(sql, "ordered", ordered=True)
        if roll < 0.8:
            aggs = []
            for _ in range(r.randint(1, 4)):
                f = r.choice(["COUNT(*)", "COUNT", "COUNTD", "SUM", "AVG", "MIN", "MAX"])
                if f == "COUNT(*)":
                    aggs.append(f)
                elif f == "COUNT":
                    aggs.append(f"COUNT({r.choice(COLUMNS)})")
                elif f == "COUNTD":
                    aggs.append(f"COUNT(DISTINCT {r.choice(EQ)})")
                elif f in ("SUM", "AVG"):
                    aggs.append(f"{f}({r.choice(SUM)})")
                else:
                    aggs.append(f"{f}({r.choice(ORD)})")
            return Statement(f"SELECT {', '.join(aggs)} FROM r{self.where()}", "rows")
        if roll < 0.92:
            g = r.choice(EQ)
            extra = r.choice(["COUNT(*)", f"SUM({r.choice(SUM)})", f"COUNT({r.choice(COLUMNS)})"])
            order = f" ORDER BY {g}{r.choice(['', ' DESC'])}" if r.random() < 0.5 else ""
            sql = f"SELECT {g}, {extra} FROM r{self.where(0.5)} GROUP BY {g}{order}"
            return Statement(sql, "ordered" if order else "rows", ordered=bool(order))
        g = r.choice(EQ)
        order = f" ORDER BY {g}" if r.random() < 0.5 else ""
        sql = f"SELECT DISTINCT {g} FROM r{self.where(0.6)}{order}"
        return Statement(sql, "ordered" if order else "rows", ordered=bool(order))

    def update(self) -> Statement:
        r = self.rng
        sets = []
        for c in r.sample(INSERTABLE, r.randint(1, 3)):
            roll = r.random()
            if c in ("a", "b", "h", "u", "d") and roll < 0.45:
                # Deltas are added exactly, the sum rounded to the column's scale.
                if c == "d":
                    k = r.choice(["1.25", "0.005"])
                elif c in ("a", "b") and r.random() < 0.2:
                    k = "1.5"
                else:
                    k = str(r.randint(1, 5))
                op = "+" if c == "u" else r.choice(["+", "-"])  # u - k: see ERRORS (proxy)
                sets.append(f"{c} = {c} {op} {k}")
            else:
                sets.append(f"{c} = {self.value(c, nullable=c != 'b')}")
        # One read-modify-write increment per statement (h, Add-only, is added in place).
        incs = [x for x in sets if x.split()[0] in "abdu" and x.split()[2:3] == x.split()[:1]]
        sets = [x for x in sets if x not in incs[1:]]
        return Statement(f"UPDATE r SET {', '.join(sets)}{self.where(0.9)}", "update")

    def delete(self) -> Statement:
        return Statement(f"DELETE FROM r WHERE {self.atom()}", "delete")

    def statement(self) -> Statement:
        roll = self.rng.random()
        if roll < 0.22:
            return self.insert()
        if roll < 0.3:
            return self.update()
        if roll < 0.34:
            return self.delete()
        st = self.select()
        if self.rng.random() < 0.4:
            st.sql = self.vary(st.sql)
        return st

    def vary(self, sql: str) -> str:
        """The same query spelled differently: backticks, a table alias and qualified
        columns, lower-case keywords (outside string literals)."""
        r = self.rng
        style = r.choice(["backticks", "alias", "qualified", "lower"])
        parts = sql.split("'")
        for i in range(0, len(parts), 2):
            part = parts[i]
            if style == "backticks":
                part = _COLUMN.sub(r"`\1`", part)
            elif style == "alias":
                part = _COLUMN.sub(r"x.\1", part).replace("FROM r", "FROM r AS x")
            elif style == "qualified":
                part = _COLUMN.sub(r"r.\1", part)
            else:
                part = _KEYWORD.sub(lambda m: m.group(0).lower(), part)
            parts[i] = part
        return "'".join(parts)


_COLUMN = re.compile(r"(?<![\w.`])(id|a|b|s|w|d|t|dt|u|h|m|p)(?![\w(`])")
_KEYWORD = re.compile(
    r"\b(SELECT|FROM|WHERE|AND|OR|NOT|IN|IS|NULL|BETWEEN|ORDER BY|GROUP BY|"
    r"DISTINCT|LIMIT|OFFSET|DESC|COUNT|SUM|AVG|MIN|MAX|LIKE)\b"
)


def _num(text: str) -> object:
    t = text.strip("'")
    try:
        return (0, float(t))
    except ValueError:
        return (1, t)


def same(plain: Any, enc: Any, ordered: bool) -> bool:
    """Equal results: row counts, lists when ordered, multisets otherwise."""
    if isinstance(plain, int) or isinstance(enc, int):
        return plain == enc
    if ordered:
        return [tuple(r) for r in plain] == [tuple(r) for r in enc]
    return Counter(map(tuple, plain)) == Counter(map(tuple, enc))


def needles(values: set[str]) -> set[bytes]:
    """Plaintext byte strings to look for: at least 5 bytes, so that random ciphertext
    (about 1 MB scanned) matches one by chance with probability ~2**-20."""
    out = set()
    for v in values:
        if len(v.encode()) >= 5:
            out.add(v.encode())
        try:
            n = int(v)
        except ValueError:
            continue
        out.add(n.to_bytes(8, "big", signed=True))
        out.add(n.to_bytes(8, "little", signed=True))
    return out
