"""The emulated prepared-statement protocol, sans I/O."""

from __future__ import annotations

import struct

import pytest

from proxy.prepared import BinaryResults, Statements, placeholders
from proxy.protocol.binary import BinaryProtocolError, binary_row, parse_execute
from proxy.protocol.codec import ColumnDefinition, lenenc_str, make_text_row


def test_placeholders_skip_strings_and_comments() -> None:
    sql = b"SELECT '?', `?`, ? /* ? */ FROM t WHERE a = ? -- ?\n"
    slots = placeholders(sql)
    assert len(slots) == 2
    assert all(sql[a:b] == b"?" for a, b in slots)


def test_bind_is_byte_exact_for_multibyte_text() -> None:
    st = Statements()
    _, p = st.prepare("SELECT 'é?ü', ? + ?".encode())
    assert p.bind(["1", "'x'"]) == "SELECT 'é?ü', 1 + 'x'".encode()


def execute_packet(stmt: int, types: list[tuple[int, int]], values: bytes, nulls: int = 0) -> bytes:
    head = b"\x17" + stmt.to_bytes(4, "little") + b"\x00" + (1).to_bytes(4, "little")
    nb = (len(types) + 7) // 8
    tb = b"".join(bytes((t, 0x80 if u else 0)) for t, u in types)
    return head + nulls.to_bytes(nb, "little") + b"\x01" + tb + values


def test_parse_execute_types() -> None:
    values = (
        (-5).to_bytes(1, "little", signed=True)
        + (2**64 - 1).to_bytes(8, "little")
        + struct.pack("<d", 2.5)
        + lenenc_str(b"it's \\")
        + lenenc_str(b"\xff\x00")
        + lenenc_str(b"-1.50")
        + bytes((11,)) + (2024).to_bytes(2, "little") + bytes((2, 29, 13, 14, 15))
        + (123456).to_bytes(4, "little")
    )  # fmt: skip
    types = [(1, 0), (8, 1), (5, 0), (253, 0), (252, 0), (246, 0), (12, 0), (253, 0)]
    bound: list[tuple[int, bool]] = []
    ex = parse_execute(execute_packet(9, types, values, nulls=0x80), 8, bound, {})
    assert ex.stmt_id == 9
    assert ex.values == [
        "-5", str(2**64 - 1), "2.5", "'it''s \\\\'", "X'ff00'", "-1.50",
        "'2024-02-29 13:14:15.123456'", "NULL",
    ]  # fmt: skip
    assert len(bound) == 8  # remembered for executions that do not resend types


@pytest.mark.parametrize("cut", [11, 15, 20])
def test_truncated_execute_is_an_error(cut: int) -> None:
    pkt = execute_packet(1, [(8, 0), (253, 0)], (5).to_bytes(8, "little") + lenenc_str(b"abc"))
    with pytest.raises(BinaryProtocolError):
        parse_execute(pkt[:cut], 2, [], {})


def test_binary_rows_from_text() -> None:
    cols = [
        ColumnDefinition(name=b"i", type=3, length=11),
        ColumnDefinition(name=b"u", type=8, length=20, flags=32),
        ColumnDefinition(name=b"n", type=253, length=10),
        ColumnDefinition(name=b"d", type=12, length=26),
        ColumnDefinition(name=b"t", type=11, length=10),
        ColumnDefinition(name=b"s", type=253, length=10),
    ]
    row = binary_row(cols, [b"-2", b"18446744073709551615", None, b"2024-02-29 00:00:00",
                            b"-838:59:59", b"x"])  # fmt: skip
    assert row[0] == 0 and row[1:2] == bytes((1 << 4,))  # column 2 (bit offset 2) is NULL
    body = row[2:]
    assert body[:4] == (-2).to_bytes(4, "little", signed=True)
    assert body[4:12] == b"\xff" * 8
    assert body[12:17] == b"\x04" + (2024).to_bytes(2, "little") + bytes((2, 29))
    assert body[17:26] == b"\x08\x01" + (34).to_bytes(4, "little") + bytes((22, 59, 59))
    assert body[26:] == b"\x01x"


class Sink:
    def __init__(self) -> None:
        self.out = bytearray()
        self.packets: list[bytes] = []

    def write(self, pkt: bytes) -> None:
        self.packets.append(pkt)


def test_binary_results_converts_rows_only() -> None:
    sink = Sink()
    br = BinaryResults(sink, deprecate_eof=False)
    col = ColumnDefinition(name=b"a", type=3, length=11).encode()
    eof = b"\xfe\x00\x00\x02\x00"
    for pkt in (b"\x01", col, eof, make_text_row([b"7"]), eof, b"\x00\x01\x00\x02\x00\x00\x00"):
        br.write(pkt)
    assert sink.packets[3] == b"\x00\x00" + (7).to_bytes(4, "little")
    assert sink.packets[:3] == [b"\x01", col, eof] and sink.packets[4:] == [
        eof, b"\x00\x01\x00\x02\x00\x00\x00"]  # fmt: skip
