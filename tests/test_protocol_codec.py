"""Text rows: the hot-path encoder and parser against a plain reference, every length form."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.protocol.codec import lenenc_int, make_text_row, parse_text_row, read_lenenc_str


def reference_row(values: list[bytes | None]) -> bytes:
    return b"".join(b"\xfb" if v is None else lenenc_int(len(v)) + v for v in values)


def reference_parse(data: bytes, columns: int) -> list[bytes | None]:
    out, pos = [], 0
    for _ in range(columns):
        v, pos = read_lenenc_str(data, pos)
        out.append(v)
    return out


cells = st.one_of(st.none(), st.binary(max_size=300))


@given(st.lists(cells, max_size=8))
def test_text_row_round_trip(values: list[bytes | None]) -> None:
    row = make_text_row(values)
    assert row == reference_row(values)
    assert parse_text_row(row, len(values)) == values == reference_parse(row, len(values))


@pytest.mark.parametrize("n", [0, 250, 251, 0xFFFF, 0x10000, 0x1000000])
def test_text_row_length_forms(n: int) -> None:
    values = [b"a", b"x" * n, None, b""]
    row = make_text_row(values)
    assert row == reference_row(values)
    assert parse_text_row(row, len(values)) == values


@pytest.mark.parametrize("row", [b"\x05abc", b"\x01a\xfc\x10\x00abc"])
def test_truncated_text_row_is_refused(row: bytes) -> None:
    with pytest.raises(ValueError):
        parse_text_row(row, 2 if row[0] == 1 else 1)
