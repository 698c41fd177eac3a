"""Literals: a cheap scanner that abstracts them out of SQL text (the shape-cache key), and
the conversion of one literal into the Python value an encrypted column holds.

    shape, lits, flags = scan("SELECT c FROM t WHERE id = 5")   # "SELECT c FROM t WHERE id = ?"

Every literal's `raw` text is kept, so a literal bound for a plain column is sent exactly as
the client wrote it. String values are unescaped with MariaDB's default rules (backslash
escapes on: NO_BACKSLASH_ESCAPES is not supported, the session must refuse to set it).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import NamedTuple

from onion.encoding import Kind
from proxy.rewrite.errors import bad_constant, out_of_range, too_long
from proxy.schema import Column


class Lit(NamedTuple):
    value: str  # unescaped string, or the number's text
    is_string: bool
    raw: str  # the token as written
    start: int  # offset in the statement text


_TOKEN = re.compile(
    r"""(?P<comment>--(?=\s|$)[^\n]*|\#[^\n]*|/\*.*?\*/)
      |(?P<bq>`(?:[^`]++|``)*+`)
      |(?P<str>'(?:[^'\\]++|\\.|'')*+'|"(?:[^"\\]++|\\.|"")*+")
      |(?P<hex>[xX]'[0-9a-fA-F]*'|[bB]'[01]*'|0[xX][0-9a-fA-F]+(?![\w$]))
      |(?P<num>(?<![\w$.])\d+(?:\.\d*)?(?:[eE][+-]?\d+)?(?![\w$]))
      |(?P<word>[A-Za-z_$][\w$]*)""",
    re.VERBOSE | re.DOTALL | re.MULTILINE,
)
_ESCAPES = {
    "0": "\0",
    "b": "\b",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "Z": "\x1a",
    "%": "\\%",
    "_": "\\_",
}
_ESC = re.compile(r"\\(.)|('')|(\"\")", re.DOTALL)


def _unescape(body: str) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return _ESCAPES.get(m.group(1), m.group(1))
        return m.group(0)[0]

    return _ESC.sub(sub, body) if ("\\" in body or "''" in body or '""' in body) else body


class Scan(NamedTuple):
    shape: str
    lits: list[Lit]
    executable_comment: bool  # /*! ... */ or /*M! ... */: text MariaDB runs but parsers skip


def scan(sql: str) -> Scan:
    out: list[str] = []
    lits: list[Lit] = []
    pos = 0
    exec_comment = False
    for m in _TOKEN.finditer(sql):
        kind = m.lastgroup
        if kind == "comment":
            tok = m.group(0)
            if tok.startswith(("/*!", "/*M!", "/*m!")):
                exec_comment = True
            continue
        if kind in ("str", "num"):
            tok = m.group(0)
            out.append(sql[pos : m.start()])
            out.append("?")
            pos = m.end()
            if kind == "str":
                lits.append(Lit(_unescape(tok[1:-1]), True, tok, m.start()))
            else:
                lits.append(Lit(tok, False, tok, m.start()))
    out.append(sql[pos:])
    return Scan("".join(out), lits, exec_comment)


# ---- literal -> column value ----------------------------------------------------------------

_INT = re.compile(r"[+-]?\d+")
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_DATETIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?)?")
_TEXT_BYTES = {
    "tinytext": 255,
    "text": 65535,
    "mediumtext": (1 << 24) - 1,
    "longtext": (1 << 32) - 1,
}


def column_value(col: Column, lit: Lit, negate: bool, *, store: bool) -> object:
    """The value `lit` means for `col`: for storing (INSERT, SET: rounded like MariaDB, range
    errors as MariaDB's) or for comparing (exact, else refused)."""
    kind = Kind(col.kind)
    if kind in (Kind.INT, Kind.UINT):
        return _int_value(col, lit, negate, store)
    if kind is Kind.DECIMAL:
        return _decimal_value(col, lit, negate, store)
    if negate:
        raise bad_constant(col.name, "a negative value for a non-numeric column")
    if kind is Kind.STRING:
        return _text_value(col, lit, store)
    return _temporal_value(col, kind, lit, store)


def _number(col: Column, lit: Lit, negate: bool) -> Decimal:
    text = lit.value.strip() if lit.is_string else lit.value
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise bad_constant(col.name, "not a number") from None
    if not d.is_finite():
        raise bad_constant(col.name, "not a number")
    return -d if negate else d


def _int_value(col: Column, lit: Lit, negate: bool, store: bool) -> int:
    text = lit.value.strip() if lit.is_string else lit.value
    if _INT.fullmatch(text):
        v = -int(text) if negate else int(text)
    else:
        d = _number(col, lit, negate)
        if d != d.to_integral_value():
            if not store or lit.is_string:
                raise bad_constant(col.name, "not an integer")
            d = d.to_integral_value(rounding=ROUND_HALF_UP)
        v = int(d)
    bits = col.bits
    lo, hi = (
        (0, (1 << bits) - 1)
        if col.kind == Kind.UINT
        else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    )
    if not lo <= v <= hi:
        if store:
            raise out_of_range(col.name)
        raise bad_constant(col.name, "outside the column's range")
    return v


def _decimal_value(col: Column, lit: Lit, negate: bool, store: bool) -> Decimal:
    d = _number(col, lit, negate)
    q = Decimal(1).scaleb(-col.scale)
    r = d.quantize(q, rounding=ROUND_HALF_UP) if abs(d) < Decimal(10) ** 66 else d
    if r != d and not store:
        raise bad_constant(col.name, "more fractional digits than the column's scale")
    if abs(r) >= Decimal(10) ** (col.precision - col.scale) or (col.unsigned and r < 0):
        if store:
            raise out_of_range(col.name)
        raise bad_constant(col.name, "outside the column's range")
    return r


def _text_value(col: Column, lit: Lit, store: bool) -> str:
    if not lit.is_string:
        if not store or not _INT.fullmatch(lit.value):
            raise bad_constant(col.name, "a number for a text column")
    v = lit.value
    if col.text == "char":
        v = v.rstrip(" ")  # CHAR values are stored without trailing spaces
    if store:
        if col.length and len(v) > col.length:
            raise too_long(col.name)
        limit = _TEXT_BYTES.get(col.text)
        if limit is not None and len(v.encode("utf-8")) > limit:
            raise too_long(col.name)
    return v


def _temporal_value(col: Column, kind: Kind, lit: Lit, store: bool) -> dt.date:
    if not lit.is_string:
        raise bad_constant(col.name, "a date or time must be a quoted string")
    text = lit.value.strip()
    m = _DATETIME.fullmatch(text)
    if m is None:
        raise bad_constant(col.name, "not a date or time")
    try:
        y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if m.group(4) is None:
            date = dt.date(y, mo, d)
            return date if kind is Kind.DATE else dt.datetime(y, mo, d)
        frac = (m.group(7) or "").ljust(6, "0")
        value = dt.datetime(y, mo, d, int(m.group(4)), int(m.group(5)), int(m.group(6)), int(frac))
    except ValueError:
        raise bad_constant(col.name, "not a valid date or time") from None
    if kind is Kind.DATE:
        if value.time() != dt.time():
            raise bad_constant(col.name, "a time for a DATE column")
        return value.date()
    unit = 10 ** (6 - col.fsp)
    if value.microsecond % unit:
        if not store:
            raise bad_constant(col.name, "more fractional digits than the column holds")
        us = (value.microsecond + unit // 2) // unit * unit
        value = value.replace(microsecond=0) + dt.timedelta(microseconds=us)
    return value
