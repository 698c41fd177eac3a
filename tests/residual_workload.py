"""A seeded generator of SELECTs whose WHERE holds conditions the proxy evaluates itself
(proxy.rewrite.residual): text ranges, BETWEEN and LIKE patterns on `utf8mb4_bin` encrypted
columns, mixed with conditions the server evaluates, ORDER BY + LIMIT / OFFSET, ungrouped
aggregates, a join; for the differential oracles (not a test module).

Every ORDER BY ends with a unique key (id), so an ordered result is fully determined.
Equality on the text columns is left out: DET equality is binary, not PAD SPACE (documented).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from proxy.rewrite.residual import is_word_pattern

DDL = [
    """CREATE TABLE q (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  s VARCHAR(24) COLLATE utf8mb4_bin,
  c CHAR(10) COLLATE utf8mb4_bin,
  r VARCHAR(24) COLLATE utf8mb4_bin COMMENT 'cryptdb: min=RND; onions=eq',
  g VARCHAR(24) COLLATE utf8mb4_general_ci,
  a INT,
  d DECIMAL(8,2),
  p INT COMMENT 'cryptdb: plain',
  KEY ka (a)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE q2 (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  k INT COMMENT 'cryptdb: plain',
  t VARCHAR(24) COLLATE utf8mb4_bin
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
]

# Trailing spaces, a tab (below the space: 'apple\t' < 'apple'), empty and blank strings,
# case, multi-byte characters (2, 3 and 4 bytes), LIKE's special characters.
TEXTS = [
    "apple",
    "apple ",
    "apple\t",
    "applesauce",
    "Apple",
    "apricot pie",
    "",
    " ",
    "banana",
    "bananarama",
    "mango",
    "Mango",
    "mango  ",
    "melon_x",
    "melon%x",
    "melon\\x",
    "ümlaut",
    "zebra",
    "zoë",
    "日本語テキスト",
    "emoji😀face",
    "x y z",
]
BOUNDS = ["a", "apple", "apple ", "apple\t", "b", "banana", "m", "mango", "Z", "z", "", "ü", "😀"]
LIKES = [
    "apple%",
    "a%",
    "%e",
    "%a",
    "%na%ma",
    "m_ngo",
    "%an_",
    "_",
    "%",
    "",
    "apple",
    "apple ",
    "melon\\_x",
    "melon\\%x",
    "melon\\\\x",
    "melon_x",
    "%\\\\%",
    "ü%",
    "%😀%",
    "__",
    "%o_",
    "M%",
    "%テ_スト",
    "x y%",
]

REFUSED = [
    ("SELECT id FROM q WHERE s < 'm' OR a = 1", "under OR / NOT"),
    ("SELECT id FROM q WHERE NOT (s LIKE 'a%' AND a = 1)", "under OR / NOT"),
    ("SELECT id FROM q WHERE (a = 1 OR s BETWEEN 'a' AND 'b')", "under OR / NOT"),
    ("SELECT id FROM q WHERE g < 'm'", "COLLATE utf8mb4_bin"),
    ("SELECT id FROM q WHERE g LIKE 'ma%'", "COLLATE utf8mb4_bin"),
    ("SELECT MIN(g) FROM q", "COLLATE utf8mb4_bin"),
    ("SELECT a, COUNT(*) FROM q WHERE s < 'm' GROUP BY a", "GROUP BY"),
    ("SELECT DISTINCT a FROM q WHERE s LIKE 'a%'", "DISTINCT"),
    ("SELECT COUNT(*) FROM q WHERE s > 'm' HAVING COUNT(*) > 1", "HAVING"),
    ("SELECT MIN(s) FROM q GROUP BY a", "GROUP BY"),
    ("UPDATE q SET a = 1 WHERE s < 'm' OR a = 2", "under OR / NOT"),
    ("DELETE FROM q WHERE s LIKE 'a%' ORDER BY id LIMIT 1", "ORDER BY / LIMIT"),
    ("UPDATE q SET a = a + 1 WHERE s < 'm'", "increment"),
    ("SELECT q.id FROM q JOIN q2 ON q.p = q2.k AND q2.t < 'm'", "top-level AND"),
]


@dataclass
class Statement:
    sql: str
    kind: str  # insert | rows | ordered | agg
    ordered: bool = False
    join: bool = False


def quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\t", "\\t") + "'"


class ResidualWorkload:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.texts: set[str] = set()  # stored values, for the plaintext scans
        self.constants: set[str] = set()  # the residuals' constants (bounds, patterns)

    def text(self, most: int = 24) -> str:
        r = self.rng
        if r.random() < 0.12:
            return "NULL"
        v = r.choice([t for t in TEXTS if len(t) <= most])  # a failed INSERT uses up ids
        self.texts.add(v)
        return quote(v)

    def insert(self) -> Statement:
        r = self.rng
        if r.random() < 0.2:
            return Statement(
                f"INSERT INTO q2 (k, t) VALUES ({r.randint(0, 6)}, {self.text()})", "insert"
            )
        rows = []
        for _ in range(r.randint(1, 3)):
            a = "NULL" if r.random() < 0.1 else str(r.randint(-5, 5))
            d = "NULL" if r.random() < 0.1 else f"{r.randint(-500, 500) / 100:.2f}"
            texts = ", ".join([self.text(), self.text(10), self.text(), self.text()])
            rows.append(f"({texts}, {a}, {d}, {r.randint(0, 6)})")
        return Statement(f"INSERT INTO q (s, c, r, g, a, d, p) VALUES {', '.join(rows)}", "insert")

    # ---- conditions ------------------------------------------------------------------------

    def bound(self) -> str:
        v = self.rng.choice(BOUNDS + TEXTS)
        self.constants.add(v)
        return quote(v)

    def pattern(self) -> str:
        r = self.rng
        while True:
            v = r.choice(LIKES) if r.random() < 0.7 else self._random_pattern()
            if not is_word_pattern(v):  # '%word%' is the Search onion's whole-word match
                break
        self.constants.add(v)
        return quote(v)

    def _random_pattern(self) -> str:
        r = self.rng
        base = r.choice(TEXTS)
        if not base:
            return "%"
        i = r.randrange(len(base))
        j = r.randrange(i, len(base) + 1)
        piece = base[i:j].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return r.choice(["{}%", "%{}", "%{}_", "_{}%", "{}"]).format(piece)

    def residual(self, col: str) -> str:
        r = self.rng
        roll = r.random()
        if roll < 0.3:
            return f"{col} {r.choice(['<', '<=', '>', '>='])} {self.bound()}"
        if roll < 0.38:
            return f"{self.bound()} {r.choice(['<', '>='])} {col}"  # the constant first
        if roll < 0.55:
            lo, hi = self.bound(), self.bound()
            return f"{col} {'NOT ' if r.random() < 0.2 else ''}BETWEEN {lo} AND {hi}"
        if roll < 0.92:
            return f"{col} {'NOT ' if r.random() < 0.2 else ''}LIKE {self.pattern()}"
        pat = r.choice(["melon!_x", "melon!%x", "%!%%", "a%", "m!_ngo", "z!"])
        self.constants.add(pat)
        return f"{col} LIKE {quote(pat)} ESCAPE '!'"

    def server(self, join: bool = False) -> str:
        r = self.rng
        options = [
            f"a {r.choice(['=', '<>', '<', '>='])} {r.randint(-5, 5)}",
            f"a IN ({r.randint(-5, 5)}, {r.randint(-5, 5)})",
            f"p <= {r.randint(0, 6)}",
            f"d > {r.randint(-5, 5)}",
            f"s IS {r.choice(['', 'NOT '])}NULL",
            f"(a > {r.randint(-5, 5)} OR p = {r.randint(0, 6)})",
            "c IS NOT NULL",
        ]
        if join:
            options += [f"q2.k >= {r.randint(0, 6)}", f"q.id > {r.randint(1, 30)}"]
        else:
            options.append(f"id BETWEEN {r.randint(1, 20)} AND {r.randint(10, 80)}")
        return r.choice(options)

    def where(self, cols: list[str], join: bool = False) -> str:
        r = self.rng
        conds = [self.residual(r.choice(cols)) for _ in range(r.choice([1, 1, 1, 2]))]
        conds += [self.server(join) for _ in range(r.choice([0, 0, 1, 1, 2]))]
        r.shuffle(conds)
        if len(conds) > 2 and r.random() < 0.3:
            return f" WHERE ({conds[0]} AND {conds[1]}) AND {' AND '.join(conds[2:])}"
        return " WHERE " + " AND ".join(conds)

    # ---- statements ------------------------------------------------------------------------

    def select(self) -> Statement:
        r = self.rng
        roll = r.random()
        if roll < 0.12:  # a join: conditions on both tables
            where = self.where(["q.s", "q2.t", "c"], join=True)
            sql = f"SELECT q.id, q.s, q2.t FROM q JOIN q2 ON q.p = q2.k{where}"
            if r.random() < 0.5:
                return Statement(
                    f"{sql} ORDER BY q2.t DESC, q.id, q2.id LIMIT {r.randint(1, 8)}",
                    "ordered",
                    True,
                    True,
                )
            return Statement(sql, "rows", join=True)
        if roll < 0.3:  # ungrouped aggregates over the kept rows
            aggs = r.sample(
                [
                    "COUNT(*)",
                    "COUNT(s)",
                    "COUNT(c)",
                    "MIN(s)",
                    "MAX(s)",
                    "MIN(c)",
                    "MAX(r)",
                    "SUM(a)",
                    "AVG(d)",
                    "MIN(a)",
                    "MAX(d)",
                    "SUM(p)",
                ],
                r.randint(1, 4),
            )
            where = self.where(["s", "c", "r"]) if r.random() < 0.8 else ""
            return Statement(f"SELECT {', '.join(aggs)} FROM q{where}", "agg")
        cols = r.choice(["id, s", "id, s, c, a", "*", "id, r, d", "id"])
        where = self.where(["s", "c", "r"])
        if r.random() < 0.55:
            key = r.choice(["s", "c", "r", "a DESC", "s DESC", "d", "p"])
            limit = ""
            if r.random() < 0.6:
                limit = f" LIMIT {r.randint(0, 6)}"
                if r.random() < 0.4:
                    limit += f" OFFSET {r.randint(0, 4)}"
            return Statement(
                f"SELECT {cols} FROM q{where} ORDER BY {key}, id{limit}", "ordered", True
            )
        return Statement(f"SELECT {cols} FROM q{where}", "rows")

    def write(self) -> Statement:
        """UPDATE / DELETE with residuals: the matching rows' IVs first (affected rows
        compared; the SELECTs after them see the result)."""
        r = self.rng
        where = self.where(["s", "c", "r"])
        roll = r.random()
        if roll < 0.4:
            sets = f"a = {r.randint(-5, 5)}"
            if r.random() < 0.5:
                sets += f", c = {self.text(10)}"
            return Statement(f"UPDATE q SET {sets}{where}", "write")
        if roll < 0.7:  # the residual's own column rewritten
            return Statement(
                f"UPDATE q SET s = {self.text()}, p = {r.randint(0, 6)}{where}", "write"
            )
        if roll < 0.85:
            k = f" AND k <= {r.randint(0, 6)}" if r.random() < 0.5 else ""
            return Statement(
                f"UPDATE q2 SET t = {self.text()} WHERE {self.residual('t')}{k}", "write"
            )
        return Statement(f"DELETE FROM q{where} AND p = {r.randint(0, 6)}", "write")

    def statement(self, n: int) -> Statement:
        roll = self.rng.random()
        if n < 25 or roll < 0.1:
            return self.insert()
        if roll < 0.18:
            return self.write()
        return self.select()
