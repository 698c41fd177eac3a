"""Result rendering in the mysql CLI's formats: boxed table, vertical (\\G), batch (TSV)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from pymysql.constants import FIELD_TYPE

NUMERIC_TYPES = frozenset(
    {
        FIELD_TYPE.DECIMAL, FIELD_TYPE.NEWDECIMAL, FIELD_TYPE.TINY, FIELD_TYPE.SHORT,
        FIELD_TYPE.LONG, FIELD_TYPE.LONGLONG, FIELD_TYPE.INT24, FIELD_TYPE.FLOAT,
        FIELD_TYPE.DOUBLE, FIELD_TYPE.YEAR, FIELD_TYPE.BIT,
    }
)
BATCH_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\0": "\\0"})


@dataclass(frozen=True)
class ResultSet:
    columns: list[str]
    numeric: list[bool]  # right-aligned in tables, as mysql does
    rows: list[Sequence[object]]
    warnings: int = 0


@dataclass(frozen=True)
class Ok:
    affected: int
    warnings: int
    info: str


def cell(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return "0x" + bytes(value).hex().upper()  # binary data: never raw to a terminal
    return str(value)


def width(text: str) -> int:
    """Terminal columns: East Asian wide characters take two, combining marks none."""
    w = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        w += 2 if unicodedata.east_asian_width(ch) in "WF" else 1
    return w


def _pad(text: str, size: int, right: bool) -> str:
    fill = " " * (size - width(text))
    return fill + text if right else text + fill


def table(rs: ResultSet) -> str:
    cells = [[cell(v) for v in row] for row in rs.rows]
    sizes = [width(c) for c in rs.columns]
    for row in cells:
        sizes = [max(s, width(c)) for s, c in zip(sizes, row, strict=True)]
    rule = "+" + "+".join("-" * (s + 2) for s in sizes) + "+"
    lines = [rule, _row(rs.columns, sizes, [False] * len(sizes)), rule]
    lines += [_row(row, sizes, rs.numeric) for row in cells]
    lines.append(rule)
    return "\n".join(lines)


def _row(values: Sequence[str], sizes: list[int], right: list[bool]) -> str:
    parts = (_pad(v, s, r) for v, s, r in zip(values, sizes, right, strict=True))
    return "| " + " | ".join(parts) + " |"


def vertical(rs: ResultSet) -> str:
    name_width = max((width(c) for c in rs.columns), default=0)
    lines = []
    for n, row in enumerate(rs.rows, 1):
        lines.append(f"{'*' * 27} {n}. row {'*' * 27}")
        for name, value in zip(rs.columns, row, strict=True):
            lines.append(f"{_pad(name, name_width, True)}: {cell(value)}")
    return "\n".join(lines)


def batch(rs: ResultSet, *, headers: bool = True) -> str:
    """`mysql -e` / piped-stdin format: tab-separated, special characters escaped."""
    lines = ["\t".join(c.translate(BATCH_ESCAPES) for c in rs.columns)] if headers else []
    lines += ["\t".join(cell(v).translate(BATCH_ESCAPES) for v in row) for row in rs.rows]
    return "\n".join(lines)


def summary(result: ResultSet | Ok, seconds: float) -> str:
    warnings = f", {_plural(result.warnings, 'warning')}" if result.warnings else ""
    timing = f" ({seconds:.2f} sec)"
    if isinstance(result, ResultSet):
        n = len(result.rows)
        return (f"{_plural(n, 'row')} in set" if n else "Empty set") + warnings + timing
    text = f"Query OK, {_plural(result.affected, 'row')} affected{warnings}{timing}"
    return f"{text}\n{result.info}" if result.info else text


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
