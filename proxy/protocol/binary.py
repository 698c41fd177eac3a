"""The prepared-statement side of the protocol, sans I/O: COM_STMT_EXECUTE parameters in,
binary result rows out.

The proxy emulates server-side prepared statements: EXECUTE binds the parameters as SQL
literals into the statement text, which then takes the same path as a COM_QUERY (rewritten
when it touches an encrypted table). Its text result set is converted here to the binary
row format the client asked for.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from proxy.protocol.codec import ColumnDefinition, lenenc_int, lenenc_str, read_lenenc_int

# MySQL field types (include/mysql_com.h)
T_DECIMAL, T_TINY, T_SHORT, T_LONG, T_FLOAT, T_DOUBLE, T_NULL, T_TIMESTAMP = range(8)
T_LONGLONG, T_INT24, T_DATE, T_TIME, T_DATETIME, T_YEAR = 8, 9, 10, 11, 12, 13
T_NEWDECIMAL = 246
UNSIGNED_FLAG = 32
_INT_WIDTH = {T_TINY: 1, T_SHORT: 2, T_YEAR: 2, T_INT24: 4, T_LONG: 4, T_LONGLONG: 8}
_DATES = (T_DATE, T_DATETIME, T_TIMESTAMP)
CURSOR_TYPE_NO_CURSOR = 0


class BinaryProtocolError(ValueError):
    """A COM_STMT_EXECUTE the proxy cannot read (answered with an ERR)."""


def make_prepare_ok(stmt_id: int, columns: int, params: int) -> bytes:
    return (
        b"\x00"
        + stmt_id.to_bytes(4, "little")
        + columns.to_bytes(2, "little")
        + params.to_bytes(2, "little")
        + b"\x00\x00\x00"
    )


def param_definition() -> bytes:
    return ColumnDefinition(name=b"?", type=253, length=0, charset=63).encode()


@dataclass
class Execute:
    stmt_id: int
    flags: int
    values: list[str] = field(default_factory=list)  # SQL literals, in parameter order


def parse_execute(
    payload: bytes, num_params: int, types: list[tuple[int, bool]], long_data: dict[int, bytes]
) -> Execute:
    """COM_STMT_EXECUTE -> the parameters as SQL literals. `types` holds the types bound by
    an earlier execution (a client sends them only when they change) and is updated."""
    try:
        stmt_id = int.from_bytes(payload[1:5], "little")
        flags = payload[5]
        pos = 10  # after the iteration count
        ex = Execute(stmt_id, flags)
        if num_params == 0:
            return ex
        nb = (num_params + 7) // 8
        nulls = payload[pos : pos + nb]
        pos += nb
        bound = payload[pos]
        pos += 1
        if bound:
            types[:] = [
                (payload[pos + 2 * i], bool(payload[pos + 2 * i + 1] & 0x80))
                for i in range(num_params)
            ]
            pos += 2 * num_params
        if len(types) != num_params:
            raise BinaryProtocolError("parameters were never bound")
        for i, (typ, unsigned) in enumerate(types):
            if i in long_data:
                ex.values.append(string_literal(long_data[i]))
            elif nulls[i // 8] & (1 << (i % 8)) or typ == T_NULL:
                ex.values.append("NULL")
            else:
                literal, pos = _read_value(payload, pos, typ, unsigned)
                ex.values.append(literal)
        return ex
    except (IndexError, struct.error) as e:
        raise BinaryProtocolError(f"malformed COM_STMT_EXECUTE ({e})") from None


def _read_value(data: bytes, pos: int, typ: int, unsigned: bool) -> tuple[str, int]:
    width = _INT_WIDTH.get(typ)
    if width is not None:
        if pos + width > len(data):
            raise IndexError("value past the packet's end")
        v = int.from_bytes(data[pos : pos + width], "little", signed=not unsigned)
        return str(v), pos + width
    if typ == T_FLOAT:
        return repr(struct.unpack_from("<f", data, pos)[0]), pos + 4
    if typ == T_DOUBLE:
        return repr(struct.unpack_from("<d", data, pos)[0]), pos + 8
    if typ in _DATES:
        n = data[pos]
        return "'" + _datetime_text(data[pos + 1 : pos + 1 + n], typ) + "'", pos + 1 + n
    if typ == T_TIME:
        n = data[pos]
        return "'" + _time_text(data[pos + 1 : pos + 1 + n]) + "'", pos + 1 + n
    raw, pos = _read_lenenc_bytes(data, pos)
    if typ in (T_DECIMAL, T_NEWDECIMAL) and _is_number(raw):
        return raw.decode("ascii"), pos
    return string_literal(raw), pos


def _read_lenenc_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    n, pos = read_lenenc_int(data, pos)
    if n is None or pos + n > len(data):
        raise IndexError("string past the packet's end")
    return data[pos : pos + n], pos + n


def _is_number(raw: bytes) -> bool:
    text = raw.decode("ascii", "replace")
    try:
        float(text)
    except ValueError:
        return False
    return text.strip() == text and "n" not in text.lower()  # no nan / inf


def string_literal(raw: bytes) -> str:
    """A quoted literal of the client's bytes: valid UTF-8 as text, anything else as X''."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "X'" + raw.hex() + "'"
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def _datetime_text(b: bytes, typ: int) -> str:
    if len(b) < 4:
        return "0000-00-00" if typ == T_DATE else "0000-00-00 00:00:00"
    y, m, d = int.from_bytes(b[0:2], "little"), b[2], b[3]
    text = f"{y:04d}-{m:02d}-{d:02d}"
    if typ == T_DATE:
        return text
    hh, mi, ss = (b[4], b[5], b[6]) if len(b) >= 7 else (0, 0, 0)
    text += f" {hh:02d}:{mi:02d}:{ss:02d}"
    if len(b) >= 11:
        text += f".{int.from_bytes(b[7:11], 'little'):06d}"
    return text


def _time_text(b: bytes) -> str:
    if len(b) < 8:
        return "00:00:00"
    neg, days = b[0], int.from_bytes(b[1:5], "little")
    hh, mi, ss = b[5] + 24 * days, b[6], b[7]
    text = f"{'-' if neg else ''}{hh:02d}:{mi:02d}:{ss:02d}"
    if len(b) >= 12:
        text += f".{int.from_bytes(b[8:12], 'little'):06d}"
    return text


# ---- results --------------------------------------------------------------------------------


def binary_row(columns: list[ColumnDefinition], values: list[bytes | None]) -> bytes:
    """A text-protocol row (values as the server's text) in the binary row format."""
    nulls = bytearray((len(columns) + 7 + 2) // 8)
    out = bytearray()
    for i, (col, v) in enumerate(zip(columns, values, strict=True)):
        if v is None:
            bit = i + 2
            nulls[bit // 8] |= 1 << (bit % 8)
            continue
        out += _binary_value(col, v)
    return b"\x00" + bytes(nulls) + bytes(out)


def _binary_value(col: ColumnDefinition, v: bytes) -> bytes:
    typ = col.type
    width = _INT_WIDTH.get(typ)
    if width is not None:
        n = int(v)
        return n.to_bytes(width, "little", signed=n < 0)
    if typ == T_FLOAT:
        return struct.pack("<f", float(v))
    if typ == T_DOUBLE:
        return struct.pack("<d", float(v))
    if typ in _DATES:
        return _binary_datetime(v.decode("ascii"))
    if typ == T_TIME:
        return _binary_time(v.decode("ascii"))
    return lenenc_str(v)


def _binary_datetime(text: str) -> bytes:
    date, _, clock = text.partition(" ")
    y, m, d = (int(x) for x in date.split("-"))
    hh = mi = ss = us = 0
    if clock:
        hms, _, frac = clock.partition(".")
        hh, mi, ss = (int(x) for x in hms.split(":"))
        us = int(frac.ljust(6, "0")) if frac else 0
    head = y.to_bytes(2, "little") + bytes((m, d))
    if us:
        return b"\x0b" + head + bytes((hh, mi, ss)) + us.to_bytes(4, "little")
    if hh or mi or ss:
        return b"\x07" + head + bytes((hh, mi, ss))
    if y or m or d:
        return b"\x04" + head
    return b"\x00"


def _binary_time(text: str) -> bytes:
    neg = text.startswith("-")
    hms, _, frac = text.lstrip("-").partition(".")
    h, mi, ss = (int(x) for x in hms.split(":"))
    us = int(frac.ljust(6, "0")) if frac else 0
    days, hh = divmod(h, 24)
    body = bytes((1 if neg else 0,)) + days.to_bytes(4, "little") + bytes((hh, mi, ss))
    if us:
        return b"\x0c" + body + us.to_bytes(4, "little")
    if days or hh or mi or ss:
        return b"\x08" + body
    return b"\x00"


__all__ = [
    "BinaryProtocolError",
    "Execute",
    "binary_row",
    "lenenc_int",
    "make_prepare_ok",
    "param_definition",
    "parse_execute",
    "string_literal",
]
