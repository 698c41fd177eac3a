"""Onion stacks: every onion of one column, composed from the layer primitives.

    Eq     RND(k_eq_rnd, iv, DET(k_det, v))      k_det = the join group's key if any
    Ord    RND(k_ord_rnd, iv, OPE(k_ope, v))
    Add    HOM(paillier, v)                       INT family and DECIMAL only
    Search SEARCH(k_search, v)                    text only

`None` (SQL NULL) maps to `None` in every onion: NULL stays NULL, which reveals which rows
are NULL and nothing else. The IV is the row's (`new_iv()`), stored in its BINARY(16) IV
column; draw a fresh one whenever a value under it changes.

A `ColumnCrypto` caches cipher contexts and is meant for one thread (the proxy's event loop);
give each thread its own instance.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

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
from onion.errors import InvalidCiphertext
from onion.hom import PaillierPrivateKey
from onion.keys import KeyCache
from onion.leaky.det import KIND_INTEGER, KIND_TEMPORAL, Det
from onion.leaky.ope import Ope
from onion.rnd import IV_SIZE, Rnd
from onion.search import Search

Value = int | Decimal | str | dt.date | dt.datetime
ONIONS = ("eq", "ord", "add", "search")
_SIGN = 1 << 63


def new_iv() -> bytes:
    """A fresh random row IV (16 bytes)."""
    return secrets.token_bytes(IV_SIZE)


def ope_domain(ctype: ColumnType) -> tuple[int, int]:
    """(D, R): plaintexts in [0, 2**D), ciphertexts of R bits = R/8 bytes.

    64 -> 128 bits for everything except DECIMAL with more than 18 digits, whose domain is
    [0, 2 * 10**p) and whose ciphertext is 64 bits longer, rounded up to whole bytes."""
    if ctype.kind is Kind.DECIMAL and ctype.precision > 18:
        d = (2 * 10**ctype.precision - 1).bit_length()
        return d, 8 * ((d + 64 + 7) // 8)
    return 64, 128


@dataclass(frozen=True)
class Onions:
    """One value in every onion the column has (None where absent or for SQL NULL)."""

    eq: bytes | None = None
    ord: bytes | None = None
    add: bytes | None = None
    search: bytes | None = None


class ColumnCrypto:
    """All onions of one column. Build once per column (keys and AES contexts are cached)."""

    def __init__(self, ctype: ColumnType, *, eq_rnd: bytes | None = None,
                 det: bytes | None = None, ord_rnd: bytes | None = None,
                 ope: bytes | None = None, search: bytes | None = None,
                 hom: PaillierPrivateKey | None = None, ope_cache: int = 4096) -> None:
        self.ctype = ctype
        k = ctype.kind
        if hom is not None and k not in (Kind.INT, Kind.UINT, Kind.DECIMAL):
            raise ValueError("the Add onion holds numbers only")
        if search is not None and k is not Kind.STRING:
            raise ValueError("the Search onion holds text only")
        self._eq_rnd = Rnd(eq_rnd) if eq_rnd is not None else None
        self._det = Det(det) if det is not None else None
        self._ord_rnd = Rnd(ord_rnd) if ord_rnd is not None else None
        d, r = ope_domain(ctype)
        self._ope = Ope(ope, d, r, cache_size=ope_cache) if ope is not None else None
        self._search = Search(search) if search is not None else None
        self._hom = hom

    @classmethod
    def from_keys(cls, keys: KeyCache, ctype: ColumnType, database_id: int, table_id: int,
                  column_id: int, *, onions: tuple[str, ...] = ("eq", "ord"),
                  join_group: int | None = None, hom: PaillierPrivateKey | None = None,
                  ope_cache: int = 4096) -> ColumnCrypto:
        ids = (database_id, table_id, column_id)
        kw: dict[str, Any] = {"ope_cache": ope_cache}
        if "eq" in onions:
            kw["eq_rnd"] = keys.layer_key(*ids, "eq", "rnd")
            kw["det"] = keys.det_key(*ids, join_group)
        if "ord" in onions:
            kw["ord_rnd"] = keys.layer_key(*ids, "ord", "rnd")
            kw["ope"] = keys.layer_key(*ids, "ord", "ope")
        if "search" in onions:
            kw["search"] = keys.layer_key(*ids, "search", "search")
        if "add" in onions:
            if hom is None:
                raise ValueError("the Add onion needs the Paillier key")
            kw["hom"] = hom
        return cls(ctype, **kw)

    # ---- Eq onion ---------------------------------------------------------------------------

    def det(self, value: Value | None) -> bytes | None:
        """The DET ciphertext: the Eq onion peeled to DET, and query constants against it."""
        if value is None:
            return None
        det = _need(self._det)
        k = self.ctype.kind
        if k in (Kind.INT, Kind.UINT):
            return det.encrypt_int(KIND_INTEGER, check_int(self.ctype, value))  # type: ignore[arg-type]
        if k is Kind.DECIMAL:
            return det.encrypt_decimal(decimal_to_scaled(self.ctype, value), self.ctype.scale)  # type: ignore[arg-type]
        if k is Kind.STRING:
            return det.encrypt_bytes(_text(value).encode("utf-8"))
        return det.encrypt_int(KIND_TEMPORAL, _micros(self.ctype, value))

    def det_decrypt(self, ct: bytes | None) -> Value | None:
        if ct is None:
            return None
        det = _need(self._det)
        k = self.ctype.kind
        if k in (Kind.INT, Kind.UINT):
            return _checked(self.ctype, det.decrypt_int(KIND_INTEGER, ct))
        if k is Kind.DECIMAL:
            m = det.decrypt_decimal(ct, self.ctype.scale)
            if abs(m) >= 10**self.ctype.precision:
                raise InvalidCiphertext()
            return scaled_to_decimal(self.ctype, m)
        if k is Kind.STRING:
            try:
                return det.decrypt_bytes(ct).decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidCiphertext() from None
        return _from_micros(self.ctype, det.decrypt_int(KIND_TEMPORAL, ct))

    def eq(self, value: Value | None, iv: bytes) -> bytes | None:
        inner = self.det(value)
        return None if inner is None else _need(self._eq_rnd).encrypt(iv, inner)

    def eq_decrypt(self, ct: bytes | None, iv: bytes) -> Value | None:
        if ct is None:
            return None
        return self.det_decrypt(_need(self._eq_rnd).decrypt(iv, ct))

    # ---- Ord onion --------------------------------------------------------------------------

    def ope_plain(self, value: Value) -> int:
        """The OPE domain point of a value (order-preserving, and for text many-to-one)."""
        k = self.ctype.kind
        if k is Kind.INT:
            return check_int(self.ctype, value) + _SIGN  # type: ignore[arg-type]
        if k is Kind.UINT:
            return check_int(self.ctype, value)  # type: ignore[arg-type]
        if k is Kind.DECIMAL:
            m = decimal_to_scaled(self.ctype, value)  # type: ignore[arg-type]
            return m + (_SIGN if self.ctype.precision <= 18 else 10**self.ctype.precision)
        if k is Kind.STRING:
            return int.from_bytes(string_order_key(_text(value)), "big")
        return _micros(self.ctype, value)

    def _ope_value(self, p: int) -> Value | bytes:
        k = self.ctype.kind
        if k is Kind.INT:
            return _checked(self.ctype, p - _SIGN)
        if k is Kind.UINT:
            return _checked(self.ctype, p)
        if k is Kind.DECIMAL:
            m = p - (_SIGN if self.ctype.precision <= 18 else 10**self.ctype.precision)
            if abs(m) >= 10**self.ctype.precision:
                raise InvalidCiphertext()
            return scaled_to_decimal(self.ctype, m)
        if k is Kind.STRING:
            return p.to_bytes(8, "big")  # only the 8-byte order key survives OPE
        return _from_micros(self.ctype, p)

    def ope(self, value: Value | None) -> bytes | None:
        """The OPE ciphertext: the Ord onion peeled to OPE, and range constants against it."""
        return None if value is None else _need(self._ope).encrypt(self.ope_plain(value))

    def ope_decrypt(self, ct: bytes | None) -> Value | bytes | None:
        """The value (for text: its 8-byte order key; read text from the Eq onion)."""
        return None if ct is None else self._ope_value(_need(self._ope).decrypt(ct))

    def ord(self, value: Value | None, iv: bytes) -> bytes | None:
        inner = self.ope(value)
        return None if inner is None else _need(self._ord_rnd).encrypt(iv, inner)

    def ord_decrypt(self, ct: bytes | None, iv: bytes) -> Value | bytes | None:
        if ct is None:
            return None
        return self.ope_decrypt(_need(self._ord_rnd).decrypt(iv, ct))

    @property
    def ope_width(self) -> int:
        """Bytes of an OPE (and Ord-onion) ciphertext: the BINARY(n) width."""
        return (ope_domain(self.ctype)[1] + 7) // 8

    # ---- Add onion --------------------------------------------------------------------------

    def _hom_plain(self, value: Value) -> int:
        if self.ctype.kind is Kind.DECIMAL:
            return decimal_to_scaled(self.ctype, value)  # type: ignore[arg-type]
        return check_int(self.ctype, value)  # type: ignore[arg-type]

    def hom(self, value: Value | None) -> bytes | None:
        return None if value is None else _need(self._hom).encrypt(self._hom_plain(value))

    def hom_constant(self, value: Value) -> bytes:
        """Enc(k) to multiply in for `SET c = c + k` (cryptdb_hom_add); k may exceed the
        column's range, since the sum is only range-checked when decrypted."""
        if self.ctype.kind is Kind.DECIMAL:
            probe = ColumnType(kind=Kind.DECIMAL, precision=65, scale=self.ctype.scale)
            return _need(self._hom).encrypt(decimal_to_scaled(probe, value))  # type: ignore[arg-type]
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError("integer constant expected")
        return _need(self._hom).encrypt(value)

    def hom_decrypt(self, ct: bytes | None) -> int | Decimal | None:
        """A value or a SUM of values; not range-checked (sums exceed the column type)."""
        if ct is None:
            return None
        m = _need(self._hom).decrypt(ct)
        return scaled_to_decimal(self.ctype, m) if self.ctype.kind is Kind.DECIMAL else m

    # ---- Search onion -----------------------------------------------------------------------

    def search(self, value: str | None) -> bytes | None:
        return None if value is None else _need(self._search).encrypt(_text(value))

    def search_token(self, word: str) -> bytes:
        return _need(self._search).token(word)

    # ---- all at once ------------------------------------------------------------------------

    def encrypt(self, value: Value | None, iv: bytes) -> Onions:
        """The value in every onion this column has (None where absent), for INSERT."""
        if value is None:
            return Onions()
        return Onions(
            eq=self.eq(value, iv) if self._det is not None else None,
            ord=self.ord(value, iv) if self._ope is not None else None,
            add=self.hom(value) if self._hom is not None else None,
            search=self.search(value) if self._search is not None else None,  # type: ignore[arg-type]
        )


def _need(layer: Any) -> Any:
    if layer is None:
        raise ValueError("this column has no such onion")
    return layer


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("text column value must be a str")
    return value


def _micros(ctype: ColumnType, value: object) -> int:
    if ctype.kind is Kind.DATE and isinstance(value, dt.datetime):
        raise TypeError("DATE column value must be a date")
    return datetime_to_micros(value)  # type: ignore[arg-type]


def _from_micros(ctype: ColumnType, us: int) -> dt.date | dt.datetime:
    try:
        return micros_to_date(us) if ctype.kind is Kind.DATE else micros_to_datetime(us)
    except ValueError:
        raise InvalidCiphertext() from None


def _checked(ctype: ColumnType, value: int) -> int:
    try:
        return check_int(ctype, value)
    except ValueError:
        raise InvalidCiphertext() from None
