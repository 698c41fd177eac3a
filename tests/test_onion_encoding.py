"""onion.encoding: exact decimal scaling, timestamps, the OPE string collation key."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onion.encoding import (
    ColumnType,
    Kind,
    check_int,
    datetime_to_micros,
    decimal_to_scaled,
    micros_to_date,
    micros_to_datetime,
    scaled_to_decimal,
    string_order_key,
)

D65 = ColumnType(kind=Kind.DECIMAL, precision=65, scale=30)
D10 = ColumnType(kind=Kind.DECIMAL, precision=10, scale=2)


def test_ColumnType_validation() -> None:
    with pytest.raises(ValueError):
        ColumnType(kind=Kind.INT, bits=12)
    with pytest.raises(ValueError):
        ColumnType(kind=Kind.DECIMAL, precision=66, scale=0)
    with pytest.raises(ValueError):
        ColumnType(kind=Kind.DECIMAL, precision=10, scale=11)
    with pytest.raises(ValueError):
        ColumnType(kind=Kind.DECIMAL, precision=40, scale=31)


def test_check_int_ranges() -> None:
    tiny = ColumnType(kind=Kind.INT, bits=8)
    assert check_int(tiny, -128) == -128
    for bad in (128, -129):
        with pytest.raises(ValueError):
            check_int(tiny, bad)
    assert check_int(ColumnType(kind=Kind.UINT), 2**64 - 1) == 2**64 - 1
    with pytest.raises(ValueError):
        check_int(ColumnType(kind=Kind.UINT), -1)
    with pytest.raises(TypeError):
        check_int(ColumnType(kind=Kind.INT), True)


def test_decimal_scaling_is_exact() -> None:
    big = Decimal("9" * 35 + "." + "9" * 30)
    assert decimal_to_scaled(D65, big) == 10**65 - 1
    assert scaled_to_decimal(D65, 10**65 - 1) == big
    assert decimal_to_scaled(D10, "-12.5") == -1250
    assert decimal_to_scaled(D10, 3) == 300
    for bad in ("1.005", "100000000", "NaN", "Infinity", "x"):
        with pytest.raises(ValueError):
            decimal_to_scaled(D10, bad)


@given(st.decimals(min_value=Decimal("-99999999.99"), max_value=Decimal("99999999.99"),
                   places=2, allow_nan=False, allow_infinity=False))
@settings(max_examples=100, deadline=None)
def test_decimal_round_trip(value: Decimal) -> None:
    assert scaled_to_decimal(D10, decimal_to_scaled(D10, value)) == value


def test_timestamps() -> None:
    assert datetime_to_micros(dt.date(1, 1, 1)) == 0
    top = dt.datetime(9999, 12, 31, 23, 59, 59, 999999)
    assert micros_to_datetime(datetime_to_micros(top)) == top
    assert datetime_to_micros(dt.date(2020, 5, 17)) == datetime_to_micros(
        dt.datetime(2020, 5, 17))
    assert micros_to_date(datetime_to_micros(dt.date(2020, 5, 17))) == dt.date(2020, 5, 17)
    with pytest.raises(ValueError):
        micros_to_date(datetime_to_micros(dt.datetime(2020, 5, 17, 0, 0, 1)))
    with pytest.raises(ValueError):
        datetime_to_micros(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    with pytest.raises(ValueError):
        micros_to_datetime(2**63)


def test_string_order_key() -> None:
    assert string_order_key("") == b" " * 8
    assert string_order_key("abc") == b"ABC     " == string_order_key("ABC  ")
    assert string_order_key("abcdefghij") == b"ABCDEFGH"
    assert string_order_key("a\t") < string_order_key("a")  # PAD SPACE: "\t" < " "
    assert string_order_key("é") == "é".encode().ljust(8)  # non-ASCII: no folding
    assert len(string_order_key("😀😀😀")) == 8  # a cut inside a character is fine


def padded_cmp(a: str, b: str) -> int:
    """MariaDB PAD SPACE comparison of the folded UTF-8 bytes (the full collation)."""
    x, y = a.encode().upper(), b.encode().upper()
    n = max(len(x), len(y))
    x, y = x.ljust(n), y.ljust(n)
    return (x > y) - (x < y)


@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
       st.text(st.characters(blacklist_categories=("Cs",)), max_size=12))
@settings(max_examples=300, deadline=None)
def test_string_order_key_is_monotone(a: str, b: str) -> None:
    ka, kb = string_order_key(a), string_order_key(b)
    if padded_cmp(a, b) < 0:
        assert ka <= kb
    if ka < kb:
        assert padded_cmp(a, b) < 0
