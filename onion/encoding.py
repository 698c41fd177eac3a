"""SQL values <-> the integers and bytes the layers encrypt. No crypto here.

Column types (`ColumnType`): signed/unsigned INT family (Python int), DECIMAL(p, s) (Decimal,
held as the scaled integer value * 10**s), CHAR/VARCHAR/TEXT in utf8mb4 (str), DATE (date) and
DATETIME(0..6) (naive datetime, held as microseconds since 0001-01-01 00:00:00). NULL never
reaches this module: it stays SQL NULL in every onion column (see docs/onion-format.md).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Context, Decimal, InvalidOperation, localcontext
from enum import StrEnum

MAX_DECIMAL_PRECISION = 65
MAX_DECIMAL_SCALE = 30
_EPOCH = dt.datetime(1, 1, 1)
_INT_BITS = (8, 16, 24, 32, 64)


class Kind(StrEnum):
    INT = "int"
    UINT = "uint"
    DECIMAL = "decimal"
    STRING = "string"
    DATE = "date"
    DATETIME = "datetime"


@dataclass(frozen=True, kw_only=True)
class ColumnType:
    """What the onion layers need to know about a column's SQL type."""

    kind: Kind
    bits: int = 64  # INT family: TINYINT 8 ... BIGINT 64 (range checks only)
    precision: int = 0  # DECIMAL(precision, scale)
    scale: int = 0

    def __post_init__(self) -> None:
        if self.kind in (Kind.INT, Kind.UINT) and self.bits not in _INT_BITS:
            raise ValueError("integer width must be one of 8, 16, 24, 32, 64")
        if self.kind is Kind.DECIMAL and not (
            1 <= self.precision <= MAX_DECIMAL_PRECISION
            and 0 <= self.scale <= min(self.precision, MAX_DECIMAL_SCALE)
        ):
            raise ValueError("DECIMAL(p, s) needs 1 <= p <= 65 and 0 <= s <= min(p, 30)")


def check_int(ctype: ColumnType, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("integer column value must be an int")
    if ctype.kind is Kind.UINT:
        lo, hi = 0, (1 << ctype.bits) - 1
    else:
        lo, hi = -(1 << (ctype.bits - 1)), (1 << (ctype.bits - 1)) - 1
    if not lo <= value <= hi:
        raise ValueError("integer out of the column's range")
    return value


def decimal_to_scaled(ctype: ColumnType, value: Decimal | int | str) -> int:
    """Exact value * 10**scale; ValueError if it has more digits than DECIMAL(p, s) holds."""
    try:
        d = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise ValueError("not a decimal number") from None
    if not d.is_finite():
        raise ValueError("DECIMAL holds finite values only")
    with localcontext() as ctx:
        ctx.prec = MAX_DECIMAL_PRECISION + MAX_DECIMAL_SCALE + 10
        scaled = d.scaleb(ctype.scale)
        m = int(scaled)
        if m != scaled:
            raise ValueError("more fractional digits than the column's scale")
    if abs(m) >= 10**ctype.precision:
        raise ValueError("decimal out of the column's range")
    return m


_EXACT = Context(prec=MAX_DECIMAL_PRECISION + MAX_DECIMAL_SCALE + 10)


def scaled_to_decimal(ctype: ColumnType, m: int) -> Decimal:
    # An explicit wide context: the default 28 digits would round DECIMAL(65, 30) values.
    return Decimal(m).scaleb(-ctype.scale, context=_EXACT)


def datetime_to_micros(value: dt.datetime | dt.date) -> int:
    """Microseconds since 0001-01-01 00:00:00 (a DATE is its midnight). Naive values only."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            raise ValueError("DATETIME values must be naive")
    elif isinstance(value, dt.date):
        value = dt.datetime(value.year, value.month, value.day)
    else:
        raise TypeError("expected a date or datetime")
    delta = value - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def micros_to_datetime(us: int) -> dt.datetime:
    try:
        return _EPOCH + dt.timedelta(microseconds=us)
    except OverflowError:
        raise ValueError("timestamp out of range") from None


def micros_to_date(us: int) -> dt.date:
    d = micros_to_datetime(us)
    if d.time() != dt.time():
        raise ValueError("not a midnight")
    return d.date()


def string_order_key(value: str, width: int = 8) -> bytes:
    """The OPE collation key: the first `width` bytes of the UTF-8 encoding after folding
    ASCII a-z to A-Z, right-padded with spaces (0x20).

    Padding with spaces gives PAD SPACE semantics ("a" == "a  " and "a\\t" < "a", as in
    MariaDB's non-binary collations); non-ASCII characters compare by code point, since
    UTF-8 byte order is code point order. Strings equal in these bytes get equal OPE."""
    if not isinstance(value, str):
        raise TypeError("expected a str")
    head = value[:width].encode("utf-8")[:width]
    return head.upper().ljust(width, b" ")  # bytes.upper() folds ASCII only

