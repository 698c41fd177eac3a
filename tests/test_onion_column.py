"""onion.column: every type through every onion at the edges, NULL, DET equality scope,
join groups, and OPE order over typed values (bytes compared like MariaDB's BINARY)."""

from __future__ import annotations

import datetime as dt
import json
import os
from decimal import Context, Decimal, localcontext
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onion import ColumnCrypto, ColumnType, InvalidCiphertext, KeyCache, Kind, new_iv
from onion.encoding import string_order_key
from onion.hom import PaillierPrivateKey

VECTORS = Path(__file__).resolve().parent / "vectors" / "onion" / "hom.json"
KEYS = KeyCache(bytes(range(32)))

INT = ColumnType(kind=Kind.INT)
UINT = ColumnType(kind=Kind.UINT)
DEC = ColumnType(kind=Kind.DECIMAL, precision=18, scale=4)
DEC65 = ColumnType(kind=Kind.DECIMAL, precision=65, scale=30)
TEXT = ColumnType(kind=Kind.STRING)
DATE = ColumnType(kind=Kind.DATE)
DATETIME = ColumnType(kind=Kind.DATETIME)

EDGES: list[tuple[ColumnType, list[Any]]] = [
    (INT, [-(2**63), -1, 0, 1, 2**63 - 1]),
    (ColumnType(kind=Kind.INT, bits=8), [-128, 127]),
    (UINT, [0, 2**64 - 1]),
    (DEC, [Decimal("-99999999999999.9999"), Decimal("0.0000"), Decimal("0.0001"),
           Decimal("99999999999999.9999")]),
    (DEC65, [Decimal("-" + "9" * 35 + "." + "9" * 30), Decimal("-1e-30"), Decimal(0),
             Decimal("1e-30"), Decimal("9" * 35 + "." + "9" * 30)]),
    (TEXT, ["", "a", "😀", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 Ünïcödé", "x" * 300]),
    (DATE, [dt.date(1, 1, 1), dt.date(1000, 1, 1), dt.date(9999, 12, 31)]),
    (DATETIME, [dt.datetime(1, 1, 1), dt.datetime(1970, 1, 1, 0, 0, 0, 1),
                dt.datetime(9999, 12, 31, 23, 59, 59, 999999)]),
]


@pytest.fixture(scope="module")
def paillier() -> PaillierPrivateKey:
    return PaillierPrivateKey.from_bytes(
        bytes.fromhex(json.loads(VECTORS.read_text())["private_key"]))


def column(ctype: ColumnType, column_id: int = 1, **kw: Any) -> ColumnCrypto:
    kw.setdefault("onions", ("eq", "ord"))
    return ColumnCrypto.from_keys(KEYS, ctype, 1, 1, column_id, **kw)


@pytest.mark.parametrize(("ctype", "values"), EDGES, ids=lambda x: getattr(x, "kind", ""))
def test_round_trips_at_the_edges(ctype: ColumnType, values: list[Any]) -> None:
    col = column(ctype)
    iv = new_iv()
    opes = []
    for v in values:
        o = col.encrypt(v, iv)
        assert col.eq_decrypt(o.eq, iv) == v
        assert col.det_decrypt(col.det(v)) == v
        assert len(o.ord) == col.ope_width
        if ctype.kind is Kind.STRING:
            assert col.ord_decrypt(o.ord, iv) == string_order_key(v)
        else:
            assert col.ord_decrypt(o.ord, iv) == v
        opes.append(col.ope(v))
    if ctype.kind is not Kind.STRING:  # the edge lists are sorted
        assert opes == sorted(opes) and len(set(opes)) == len(opes)


@pytest.mark.parametrize(("ctype", "values"), EDGES[:5], ids=lambda x: getattr(x, "kind", ""))
def test_hom_round_trips_and_sums(ctype: ColumnType, values: list[Any],
                                  paillier: PaillierPrivateKey) -> None:
    col = column(ctype, onions=("add",), hom=paillier)
    cts = [col.hom(v) for v in values]
    assert [col.hom_decrypt(c) for c in cts] == values
    with localcontext() as ctx:
        ctx.prec = 100  # exact: the default 28 digits would round DECIMAL(65, 30) sums
        assert col.hom_decrypt(paillier.public_key.sum(cts)) == sum(values)
    inc = paillier.public_key.add(cts[0], col.hom_constant(values[-1]))
    assert col.hom_decrypt(inc) == values[0] + values[-1]


def test_null_stays_null(paillier: PaillierPrivateKey) -> None:
    col = column(TEXT, onions=("eq", "ord", "search"))
    iv = new_iv()
    o = col.encrypt(None, iv)
    assert (o.eq, o.ord, o.add, o.search) == (None, None, None, None)
    assert col.eq_decrypt(None, iv) is None and col.ord_decrypt(None, iv) is None
    assert col.det(None) is None and col.ope(None) is None and col.search(None) is None
    num = column(INT, onions=("add",), hom=paillier)
    assert num.hom(None) is None and num.hom_decrypt(None) is None


def test_one_mib_text() -> None:
    text = ("lorem ipsum 😀 " * 70000)[: 1 << 20]
    col = column(TEXT, onions=("eq", "ord", "search"))
    iv = new_iv()
    o = col.encrypt(text, iv)
    assert col.eq_decrypt(o.eq, iv) == text
    assert len(o.eq) == len(text.encode()) + 17
    assert o.search is not None and len(o.search) == 1 + 2 * 24  # lorem, ipsum


def test_det_equal_in_a_column_distinct_across_columns() -> None:
    a, a2, b = column(TEXT, 1), column(TEXT, 1), column(TEXT, 2)
    assert a.det("x") == a2.det("x") != a.det("y")
    assert a.det("x") != b.det("x")
    # RND on top: equal values no longer look equal; peeling (by the UDF) restores DET.
    iv1, iv2 = new_iv(), new_iv()
    assert a.eq("x", iv1) != a.eq("x", iv2)
    ints = [column(INT, c).det(5) for c in (1, 2, 3)]
    assert len(set(ints)) == 3


def test_join_group_shares_the_det_key() -> None:
    a = column(INT, 1, join_group=7)
    b = column(ColumnType(kind=Kind.UINT, bits=32), 2, join_group=7)
    c = column(INT, 3, join_group=8)
    assert a.det(42) == b.det(42) != c.det(42)
    assert b.det_decrypt(a.det(42)) == 42
    iv = new_iv()  # RND keys stay per column even inside a group
    assert a.eq(42, iv) != b.eq(42, iv)
    d1 = column(DATE, 4, join_group=9).det(dt.date(2020, 1, 2))
    assert d1 == column(DATETIME, 5, join_group=9).det(dt.datetime(2020, 1, 2))


def test_decryption_failures_are_opaque() -> None:
    col = column(INT)
    iv = new_iv()
    o = col.encrypt(5, iv)
    with pytest.raises(InvalidCiphertext):
        col.eq_decrypt(o.eq, new_iv())  # wrong IV
    with pytest.raises(InvalidCiphertext):
        column(INT, 2).eq_decrypt(o.eq, iv)  # wrong column key
    with pytest.raises(InvalidCiphertext):
        col.ord_decrypt(o.ord, new_iv())
    with pytest.raises(InvalidCiphertext):
        column(ColumnType(kind=Kind.INT, bits=8), 1).det_decrypt(col.det(1000))
    with pytest.raises(InvalidCiphertext):
        column(TEXT).det_decrypt(column(TEXT).det("é")[:-1])


def test_wrong_value_types_are_refused() -> None:
    with pytest.raises(TypeError):
        column(TEXT).det(5)
    with pytest.raises(TypeError):
        column(DATE).det(dt.datetime(2020, 1, 1))
    with pytest.raises(ValueError):
        column(INT, onions=("eq",)).ope(5)
    with pytest.raises(ValueError):
        ColumnCrypto(TEXT, hom=None, search=None).det("x")
    with pytest.raises(ValueError):
        column(INT, onions=("search",))


def test_search_onion() -> None:
    col = column(TEXT, onions=("search",))
    rows = ["red apple", "green apple", "Red wine", None]
    stored = [col.search(r) for r in rows]
    from onion.search import match

    token = col.search_token("RED")
    assert [s is not None and match(s, token) for s in stored] == [True, False, True, False]


# ---- OPE order over typed values (hypothesis) ---------------------------------------------

ORD = {c: column(c, 10 + i, onions=("ord",)) for i, c in
       enumerate((INT, UINT, DEC, DEC65, TEXT, DATE, DATETIME))}


def _check_order(ctype: ColumnType, a: Any, b: Any) -> None:
    col = ORD[ctype]
    ca, cb = col.ope(a), col.ope(b)
    assert (ca < cb) == (a < b) and (ca == cb) == (a == b)


@given(st.integers(-(2**63), 2**63 - 1), st.integers(-(2**63), 2**63 - 1))
@settings(max_examples=150, deadline=None)
def test_ope_order_signed_64(a: int, b: int) -> None:
    _check_order(INT, a, b)


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
@settings(max_examples=80, deadline=None)
def test_ope_order_unsigned_64(a: int, b: int) -> None:
    _check_order(UINT, a, b)


_dec18 = st.decimals(min_value=Decimal("-99999999999999.9999"),
                     max_value=Decimal("99999999999999.9999"), places=4)


@given(_dec18, _dec18)
@settings(max_examples=100, deadline=None)
def test_ope_order_decimal(a: Decimal, b: Decimal) -> None:
    _check_order(DEC, a, b)


_dec65 = st.builds(lambda m: Decimal(m).scaleb(-30, context=Context(prec=100)),
                   st.integers(-(10**65) + 1, 10**65 - 1))


@given(_dec65, _dec65)
@settings(max_examples=10, deadline=None)  # pure-Python OPE: ~5 ms per value
def test_ope_order_wide_decimal(a: Decimal, b: Decimal) -> None:
    _check_order(DEC65, a, b)
    assert ORD[DEC65].ope_decrypt(ORD[DEC65].ope(a)) == a


@given(st.datetimes(), st.datetimes())
@settings(max_examples=100, deadline=None)
def test_ope_order_datetimes(a: dt.datetime, b: dt.datetime) -> None:
    _check_order(DATETIME, a, b)


@given(st.dates(), st.dates())
@settings(max_examples=50, deadline=None)
def test_ope_order_dates(a: dt.date, b: dt.date) -> None:
    _check_order(DATE, a, b)


def _padded_cmp(a: str, b: str) -> int:
    x, y = a.encode().upper(), b.encode().upper()
    n = max(len(x), len(y))
    x, y = x.ljust(n), y.ljust(n)
    return (x > y) - (x < y)


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@given(_text, _text)
@settings(max_examples=150, deadline=None)
def test_ope_order_strings(a: str, b: str) -> None:
    """Strings order by their first 8 bytes under the documented collation; ties are equal."""
    col = ORD[TEXT]
    ca, cb = col.ope(a), col.ope(b)
    ka, kb = string_order_key(a), string_order_key(b)
    assert (ca < cb) == (ka < kb) and (ca == cb) == (ka == kb)
    if _padded_cmp(a, b) < 0:  # never inverted against the full collation
        assert ca <= cb


def test_ope_strings_examples() -> None:
    col = ORD[TEXT]
    words = ["", "a", "A", "ab", "abcdefgh", "abcdefghZZZ", "b", "z", "é", "😀"]
    opes = [col.ope(w) for w in words]
    assert opes == sorted(opes)
    assert col.ope("a") == col.ope("A") == col.ope("a   ")
    assert col.ope("abcdefgh") == col.ope("abcdefghZZZ")  # only 8 bytes are ordered
    assert col.ope("a\t") < col.ope("a")


def test_ope_width_and_iv_independence() -> None:
    assert column(INT).ope_width == 16 and column(DEC65).ope_width == 36
    col = column(INT)
    iv = os.urandom(16)
    assert col.ord(5, iv) != col.ord(5, os.urandom(16))


# ---- fuzz invariant: garbage either decrypts or raises InvalidCiphertext --------------------

FUZZ = {c: column(c, 30 + i, onions=("eq", "ord")) for i, c in
        enumerate((INT, ColumnType(kind=Kind.INT, bits=8), DEC65, TEXT, DATE, DATETIME))}


_garbage = st.one_of(st.binary(max_size=64), *(st.binary(min_size=n, max_size=n)
                                                 for n in (16, 17, 36, 46)))


@given(st.sampled_from(sorted(FUZZ, key=str)), _garbage, st.binary(min_size=16, max_size=16))
@settings(max_examples=300, deadline=None)
def test_garbage_raises_only_InvalidCiphertext(ctype: ColumnType, data: bytes,
                                               iv: bytes) -> None:
    col = FUZZ[ctype]
    for fn in (lambda: col.eq_decrypt(data, iv), lambda: col.det_decrypt(data),
               lambda: col.ord_decrypt(data, iv), lambda: col.ope_decrypt(data)):
        try:
            fn()
        except InvalidCiphertext:
            pass


@given(st.binary(min_size=512, max_size=512))
@settings(max_examples=30, deadline=None)
def test_hom_garbage(data: bytes) -> None:
    key = PaillierPrivateKey.from_bytes(
        bytes.fromhex(json.loads(VECTORS.read_text())["private_key"]))
    try:
        assert isinstance(key.decrypt(data), int)  # any unit mod n**2 is some ciphertext
    except InvalidCiphertext:
        pass
