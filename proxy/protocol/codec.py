"""Pure parse/serialize functions for the packets the proxy builds or inspects.

Result rows from the backend are forwarded verbatim; these functions cover the packets
whose content the proxy itself decides (OK, ERR, EOF, column definitions, text rows).
"""

from __future__ import annotations

from dataclasses import dataclass

from mysql_mimic.types import Capabilities

NULL_CELL = 0xFB


def lenenc_int(n: int) -> bytes:
    if n < 251:
        return bytes((n,))
    if n < 1 << 16:
        return b"\xfc" + n.to_bytes(2, "little")
    if n < 1 << 24:
        return b"\xfd" + n.to_bytes(3, "little")
    return b"\xfe" + n.to_bytes(8, "little")


def lenenc_str(b: bytes) -> bytes:
    return lenenc_int(len(b)) + b


def read_lenenc_int(data: bytes, pos: int) -> tuple[int | None, int]:
    """(value, next position); value None for the NULL marker 0xFB."""
    first = data[pos]
    if first < 251:
        return first, pos + 1
    if first == 0xFB:
        return None, pos + 1
    if first == 0xFC:
        return int.from_bytes(data[pos + 1 : pos + 3], "little"), pos + 3
    if first == 0xFD:
        return int.from_bytes(data[pos + 1 : pos + 4], "little"), pos + 4
    if first == 0xFE:
        if pos + 9 > len(data):
            raise ValueError("truncated length-encoded integer")
        return int.from_bytes(data[pos + 1 : pos + 9], "little"), pos + 9
    raise ValueError("invalid length-encoded integer")


def read_lenenc_str(data: bytes, pos: int) -> tuple[bytes | None, int]:
    n, pos = read_lenenc_int(data, pos)
    if n is None:
        return None, pos
    end = pos + n
    if end > len(data):
        raise ValueError("truncated length-encoded string")
    return data[pos:end], end


def read_null_str(data: bytes, pos: int) -> tuple[bytes, int]:
    end = data.find(b"\x00", pos)
    if end < 0:
        raise ValueError("unterminated string")
    return data[pos:end], end + 1


def make_ok(
    *,
    affected_rows: int = 0,
    last_insert_id: int = 0,
    status: int = 0,
    warnings: int = 0,
    info: bytes = b"",
    eof_header: bool = False,
) -> bytes:
    """OK packet (0x00), or with `eof_header` the 0xFE OK that ends a result set when the
    client set CLIENT_DEPRECATE_EOF."""
    return b"".join(
        (
            b"\xfe" if eof_header else b"\x00",
            lenenc_int(affected_rows),
            lenenc_int(last_insert_id),
            status.to_bytes(2, "little"),
            warnings.to_bytes(2, "little"),
            info,
        )
    )


def make_eof(*, status: int = 0, warnings: int = 0) -> bytes:
    return b"\xfe" + warnings.to_bytes(2, "little") + status.to_bytes(2, "little")


def make_err(code: int, sqlstate: str, message: str) -> bytes:
    return (
        b"\xff"
        + code.to_bytes(2, "little")
        + b"#"
        + sqlstate.encode("ascii")[:5].ljust(5, b"0")
        + message.encode("utf-8", "replace")
    )


def end_of_rows(capabilities: int, *, status: int, warnings: int) -> bytes:
    if capabilities & Capabilities.CLIENT_DEPRECATE_EOF:
        return make_ok(status=status, warnings=warnings, eof_header=True)
    return make_eof(status=status, warnings=warnings)


@dataclass(frozen=True, slots=True, kw_only=True)
class OkPacket:
    affected_rows: int
    last_insert_id: int
    status: int
    warnings: int
    info: bytes


def parse_ok(data: bytes) -> OkPacket:
    affected, pos = read_lenenc_int(data, 1)
    insert_id, pos = read_lenenc_int(data, pos)
    status = int.from_bytes(data[pos : pos + 2], "little")
    warnings = int.from_bytes(data[pos + 2 : pos + 4], "little")
    return OkPacket(
        affected_rows=affected or 0,
        last_insert_id=insert_id or 0,
        status=status,
        warnings=warnings,
        info=data[pos + 4 :],
    )


def is_eof(data: bytes) -> bool:
    """An EOF packet (also the OK-with-0xFE form): a 0xFE header and short length."""
    return len(data) < 9 and data[:1] == b"\xfe"


def parse_eof(data: bytes) -> tuple[int, int]:
    """(warnings, status) of an EOF packet from a backend without CLIENT_DEPRECATE_EOF."""
    return int.from_bytes(data[1:3], "little"), int.from_bytes(data[3:5], "little")


def parse_err(data: bytes) -> tuple[int, str, str]:
    code = int.from_bytes(data[1:3], "little")
    if data[3:4] == b"#":
        return code, data[4:9].decode("ascii", "replace"), data[9:].decode("utf-8", "replace")
    return code, "HY000", data[3:].decode("utf-8", "replace")


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnDefinition:
    """Protocol::ColumnDefinition41: what a client learns about one result column."""

    name: bytes
    type: int
    length: int
    flags: int = 0
    decimals: int = 0
    charset: int = 63  # binary
    schema: bytes = b""
    table: bytes = b""
    org_table: bytes = b""
    org_name: bytes = b""
    catalog: bytes = b"def"

    def encode(self) -> bytes:
        return b"".join(
            (
                lenenc_str(self.catalog),
                lenenc_str(self.schema),
                lenenc_str(self.table),
                lenenc_str(self.org_table),
                lenenc_str(self.name),
                lenenc_str(self.org_name),
                b"\x0c",
                self.charset.to_bytes(2, "little"),
                self.length.to_bytes(4, "little"),
                bytes((self.type,)),
                self.flags.to_bytes(2, "little"),
                bytes((self.decimals,)),
                b"\x00\x00",
            )
        )

    @classmethod
    def decode(cls, data: bytes) -> ColumnDefinition:
        fields = []
        pos = 0
        for _ in range(6):
            value, pos = read_lenenc_str(data, pos)
            fields.append(value or b"")
        _, pos = read_lenenc_int(data, pos)  # length of the fixed fields: 0x0c
        return cls(
            catalog=fields[0],
            schema=fields[1],
            table=fields[2],
            org_table=fields[3],
            name=fields[4],
            org_name=fields[5],
            charset=int.from_bytes(data[pos : pos + 2], "little"),
            length=int.from_bytes(data[pos + 2 : pos + 6], "little"),
            type=data[pos + 6],
            flags=int.from_bytes(data[pos + 7 : pos + 9], "little"),
            decimals=data[pos + 9],
        )


# One-byte length prefixes, prebuilt: rows are encoded once per row per result (hot path).
_SHORT_LENGTHS = [bytes((n,)) for n in range(251)]
_NULL = bytes((NULL_CELL,))


def make_text_row(values: list[bytes | None]) -> bytes:
    parts: list[bytes] = []
    add = parts.append
    for v in values:
        if v is None:
            add(_NULL)
        else:
            n = len(v)
            add(_SHORT_LENGTHS[n] if n < 251 else lenenc_int(n))
            add(v)
    return b"".join(parts)


def parse_text_row(data: bytes, columns: int) -> list[bytes | None]:
    values: list[bytes | None] = []
    add = values.append
    pos = 0
    for _ in range(columns):
        n = data[pos]
        if n < 251:  # the common case inline: a short string
            end = pos + 1 + n
            if end > len(data):
                raise ValueError("truncated length-encoded string")
            add(data[pos + 1 : end])
            pos = end
        else:
            value, pos = read_lenenc_str(data, pos)
            add(value)
    return values
