"""A seeded generator of select-list expressions over encrypted columns (proxy.rewrite.exprs)
for the differential oracles (not a test module): typed random trees of arithmetic, text,
control-flow and date functions over table `x`, whose rows hold NULLs, negative numbers,
extreme integers, several DECIMAL scales, ASCII text with spaces and case, CHAR and a
`_ci` VARCHAR. Every expression is one the proxy supports; overflows are errors on both
sides (1690).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

DDL = """CREATE TABLE x (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  a INT,
  b BIGINT NOT NULL DEFAULT 7,
  ti TINYINT,
  u SMALLINT UNSIGNED,
  bu BIGINT UNSIGNED,
  d DECIMAL(8,2),
  e DECIMAL(15,0),
  ud DECIMAL(6,3) UNSIGNED,
  s VARCHAR(24) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,
  c CHAR(6) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci,
  g VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL DEFAULT '',
  tx TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,
  t DATE,
  tn DATE NOT NULL DEFAULT '2000-01-01',
  dt DATETIME(3),
  d0 DATETIME,
  m INT COMMENT 'cryptdb: min=DET',
  p INT COMMENT 'cryptdb: plain'
) ENGINE=InnoDB"""

INTS = ["id", "a", "b", "ti", "u", "bu", "m", "p"]
DECS = ["d", "e", "ud"]
TEXTS = ["s", "c", "g"]
DATES = ["t", "tn", "dt", "d0"]
NUM_FUNCTIONS = ["ABS", "ROUND", "ROUNDN", "FLOOR", "CEIL", "LENGTH", "CHAR_LENGTH", "YEAR",
                 "MONTH", "DAY", "COALESCE", "IFNULL", "NULLIF", "IF", "CASE"]  # fmt: skip
TEXT_FUNCTIONS = ["CONCAT", "CONCAT_WS", "UPPER", "LOWER", "SUBSTRING", "SUBSTRING3", "LEFT",
                  "RIGHT", "TRIM", "LTRIM", "RTRIM", "COALESCE", "IF", "CASE"]  # fmt: skip
TEXT_VALUES = ["Hello", "hello ", " x y ", "", "abc", "ABC", "Zeta 9", "a\tb", "mixed Case"]

# Refusals the proxy may answer where MariaDB computes (documented): per row, or by type.
PROXY_REFUSALS = ("negative zero", "18 integer digits")

# (statement, a word its refusal message contains)
REFUSED_EXPRS = [
    ("SELECT a + 1 FROM x GROUP BY a", "GROUP BY"),
    ("SELECT DISTINCT a + 1 FROM x", "DISTINCT"),
    ("SELECT a + SUM(b) FROM x", "select list"),
    ("SELECT a + '1' FROM x", "INT / DECIMAL"),
    ("SELECT s + 1 FROM x", "INT / DECIMAL"),
    ("SELECT a + 1e3 FROM x", "LITERAL"),
    ("SELECT UPPER(tx) FROM x", "TEXT"),
    ("SELECT CONCAT(s, tx) FROM x", "TEXT"),
    ("SELECT COALESCE(a, s) FROM x", "different types"),
    ("SELECT COALESCE(t, '2020-01-01') FROM x", "different types"),
    ("SELECT IF(s > 1, a, b) FROM x", "different types"),
    ("SELECT MID(s, 1, 2) FROM x", "ANONYMOUS"),
    ("SELECT SUBSTRING(s, a) FROM x", "integer constant"),
    ("SELECT TRIM(BOTH 'x' FROM s) FROM x", "spaces"),
    ("SELECT CASE a WHEN 1 THEN 2 END FROM x", "CASE value"),
    ("SELECT YEAR(a) FROM x", "DATE / DATETIME"),
    ("SELECT ROUND(b, -1) FROM x", "BIGINT"),
    ("SELECT (a) FROM x", "parenthesized column"),
    ("SELECT ABS(MONTH(t)) FROM x", "date part"),
    ("SELECT a + 1 AS n FROM x HAVING n > 1", "HAVING"),
    ("SELECT a + 99999999999999999999 FROM x", "beyond BIGINT"),
]


@dataclass
class Expr:
    sql: str
    kind: str  # num text date


class ExprWorkload:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.used: set[str] = set()  # plaintext values for the leak scan

    # ---- rows ---------------------------------------------------------------------------

    def insert(self) -> str:
        r = self.rng

        def maybe(v: str) -> str:
            return "NULL" if r.random() < 0.15 else v

        def text(n: int) -> str:
            v = r.choice(TEXT_VALUES)[:n]
            if len(v) >= 4:
                self.used.add(v)
            return "'" + v.replace("\\", "\\\\").replace("\t", "\\t") + "'"

        big = r.random() < 0.08
        values = {
            "a": maybe(str(r.choice([*range(-9, 10), 2147483647, -2147483648, 123456]))),
            "b": str(r.choice([*range(-5, 20), 9223372036854775807 if big else 10**12])),
            "ti": maybe(str(r.choice([-128, -7, 0, 3, 127]))),
            "u": maybe(str(r.choice([0, 1, 7, 40, 65535]))),
            "bu": maybe(str(r.choice([0, 5, 18446744073709551615 if big else 99]))),
            "d": maybe(f"{r.randint(-99999, 99999) / 100:.2f}"),
            "e": maybe(str(r.choice([0, -1, 5, 99999, -123456789012345]))),
            "ud": maybe(f"{r.randint(0, 99999) / 1000:.3f}"),
            "s": maybe(text(24)),
            "c": maybe(text(6)),
            "g": text(20),
            "tx": maybe(text(100)),
            "t": maybe(f"'2020-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}'"),
            "tn": f"'19{r.randint(10, 99)}-0{r.randint(1, 9)}-1{r.randint(0, 9)}'",
            "dt": maybe(
                f"'2021-05-0{r.randint(1, 9)} 1{r.randint(0, 9)}:0{r.randint(0, 9)}:00."
                f"{r.choice(['000', '250', '999'])}'"
            ),  # fmt: skip
            "d0": maybe(f"'1999-12-31 23:59:{r.randint(10, 59)}'"),
            "m": maybe(str(r.randint(-3, 8))),
            "p": maybe(str(r.randint(-10, 10))),
        }
        cols = ", ".join(values)
        return f"INSERT INTO x ({cols}) VALUES ({', '.join(values.values())})"

    # ---- expressions --------------------------------------------------------------------

    def num_literal(self) -> str:
        return self.rng.choice(["1", "0", "2", "-3", "7", "1.5", "-0.25", "100", "2.50", "10"])

    def num(self, depth: int = 0) -> str:
        r = self.rng
        roll = r.random()
        if depth >= 2 or roll < 0.3:
            return r.choice(INTS + DECS) if r.random() < 0.8 else self.num_literal()
        if roll < 0.6:
            op = r.choice(["+", "-", "*", "/", "DIV", "MOD", "%"])
            return f"{self.num(depth + 1)} {op} {self.num(depth + 1)}"
        if roll < 0.65:
            return f"-{r.choice(INTS + DECS)}"
        if roll < 0.7:
            return f"({self.num(depth + 1)} {r.choice(['+', '*'])} {self.num(depth + 1)})"
        fn = r.choice(NUM_FUNCTIONS)
        if fn in ("ABS", "FLOOR", "CEIL"):
            arg = self.num(depth + 1)
            if fn == "ABS" and arg.startswith(("YEAR", "MONTH", "DAY")):
                arg = f"{arg} + 1"  # ABS of a date part is refused
            return f"{fn}({arg})"
        if fn == "ROUND":
            return f"ROUND({r.choice(DECS + ['a', 'ti', 'u'])})"
        if fn == "ROUNDN":
            places = r.choice(["0", "1", "3", "-1", "-2"])
            return f"ROUND({r.choice(DECS + ['a', 'ti', 'u'])}, {places})"
        if fn in ("LENGTH", "CHAR_LENGTH"):
            return f"{fn}({r.choice([*TEXTS, 'tx']) if r.random() < 0.7 else self.text(depth + 1)})"
        if fn in ("YEAR", "MONTH", "DAY"):
            return f"{fn}({r.choice(DATES)})"
        if fn in ("COALESCE", "IFNULL"):
            args = [self.num_atom() for _ in range(2 if fn == "IFNULL" else r.randint(2, 3))]
            return f"{fn}({', '.join(args)})"
        if fn == "NULLIF":
            return f"NULLIF({self.num_atom()}, {self.num_literal()})"
        if fn == "IF":
            return f"IF({self.cond()}, {self.num_atom()}, {self.num_atom()})"
        return self.case(self.num_atom)

    def num_atom(self) -> str:
        """A value for control-flow functions: one signedness family, so that the result
        type is one the proxy matches (mixed ones become DECIMAL, also matched)."""
        r = self.rng
        return r.choice(INTS + DECS) if r.random() < 0.75 else self.num_literal()

    def text(self, depth: int = 0) -> str:
        r = self.rng
        roll = r.random()
        if depth >= 2 or roll < 0.25:
            return (
                r.choice(TEXTS) if r.random() < 0.8 else "'" + r.choice(["x", "-", " ", "ab"]) + "'"
            )
        fn = r.choice(TEXT_FUNCTIONS)
        if fn == "CONCAT":
            parts = [self.text(depth + 1) if r.random() < 0.7 else self.num(2)
                     for _ in range(r.randint(1, 3))]  # fmt: skip
            return f"CONCAT({', '.join(parts)})"
        if fn == "CONCAT_WS":
            parts = [self.text(depth + 1) for _ in range(r.randint(2, 3))]
            return f"CONCAT_WS({r.choice(['-', ', ', ''])!r}, {', '.join(parts)})"
        if fn in ("UPPER", "LOWER", "TRIM", "LTRIM", "RTRIM"):
            return f"{fn}({self.text(depth + 1)})"
        if fn in ("SUBSTRING", "SUBSTRING3"):
            start = r.choice(["1", "2", "0", "-2", "-30", "5"])
            extra = f", {r.choice(['1', '3', '0', '-1', '10'])}" if fn == "SUBSTRING3" else ""
            return f"SUBSTRING({self.text(depth + 1)}, {start}{extra})"
        if fn in ("LEFT", "RIGHT"):
            return f"{fn}({self.text(depth + 1)}, {r.choice(['0', '1', '3', '30', '-1'])})"
        if fn == "COALESCE":
            return f"COALESCE({self.text(depth + 1)}, {self.text(depth + 1)})"
        if fn == "IF":
            return f"IF({self.cond()}, {self.text(depth + 1)}, {self.text(depth + 1)})"
        return self.case(lambda: self.text(depth + 1))

    def date(self) -> str:
        r = self.rng
        roll = r.random()
        if roll < 0.4:
            return f"DATE({r.choice(DATES)})"
        if roll < 0.7:
            same = r.choice([["t", "tn"], ["dt"], ["d0"]])
            return f"COALESCE({', '.join(r.choice(same) for _ in range(2))})"
        return f"IF({self.cond()}, t, tn)"

    def cond(self) -> str:
        r = self.rng
        roll = r.random()
        op = r.choice(["=", "<>", "<", "<=", ">", ">=", "<=>"])
        if roll < 0.4:  # signed: MariaDB's evaluation of UNSIGNED overflow in conditions
            value = self.num(1)  # is not the operands' order (not emulated: the proxy errs)
            while any(w in ("u", "bu", "ud") for w in re.findall(r"\w+", value)):
                value = self.num(1)
            return f"{value} {op} {self.num_literal()}"
        if roll < 0.55:
            return f"{r.choice(INTS + DECS)} IS {r.choice(['', 'NOT '])}NULL"
        if roll < 0.7:
            return f"{r.choice(TEXTS)} {op} '{r.choice(['abc', 'Hello', '', 'hello'])}'"
        if roll < 0.8:
            return f"t {op} tn"
        if roll < 0.9:
            return f"({self.cond()} {r.choice(['AND', 'OR'])} {self.cond()})"
        return f"NOT ({self.cond()})"

    def case(self, value: object) -> str:
        r = self.rng
        arms = " ".join(f"WHEN {self.cond()} THEN {value()}" for _ in range(r.randint(1, 2)))  # type: ignore[operator]
        default = f" ELSE {value()}" if r.random() < 0.6 else ""  # type: ignore[operator]
        return f"CASE {arms}{default} END"

    def expression(self) -> Expr:
        r = self.rng
        roll = r.random()
        if roll < 0.5:
            return Expr(self.num(), "num")
        if roll < 0.9:
            return Expr(self.text(), "text")
        return Expr(self.date(), "date")

    def select(self) -> tuple[str, bool]:
        """(statement, ordered). Expressions with or without aliases, next to columns; an
        ORDER BY the id (unique) makes the order determined."""
        r = self.rng
        items = []
        for i in range(r.randint(1, 3)):
            e = self.expression().sql
            items.append(f"{e} AS e{i}" if r.random() < 0.3 else e)
        if r.random() < 0.3:
            items.insert(0, r.choice(["id", "a", "s", "d"]))
        where = ""
        if r.random() < 0.3:
            where = f" WHERE {r.choice(['a > 0', 'id <= 10', 's IS NOT NULL', 'p = 3'])}"
        if r.random() < 0.4:
            return f"SELECT {', '.join(items)} FROM x{where} ORDER BY id", True
        return f"SELECT {', '.join(items)} FROM x{where}", False
