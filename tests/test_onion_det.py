"""onion.leaky.det: the AES-block and AES-SIV forms, and their decryption checks."""

from __future__ import annotations

import os

import pytest

from onion.errors import InvalidCiphertext
from onion.leaky.det import KIND_DECIMAL, KIND_INTEGER, KIND_TEMPORAL, Det

KEY = bytes(range(64))


@pytest.mark.parametrize("value", [0, 1, -1, 2**63 - 1, -(2**63), 2**64 - 1, 2**70, -(2**71)])
def test_Det_int_round_trip(value: int) -> None:
    d = Det(KEY)
    ct = d.encrypt_int(KIND_INTEGER, value)
    assert len(ct) == 16 and d.decrypt_int(KIND_INTEGER, ct) == value
    assert d.encrypt_int(KIND_INTEGER, value) == ct  # deterministic


def test_Det_int_domains_are_separated() -> None:
    d = Det(KEY)
    assert len({d.encrypt_int(KIND_INTEGER, 5), d.encrypt_int(KIND_TEMPORAL, 5),
                d.encrypt_int(KIND_DECIMAL, 5, 0), d.encrypt_int(KIND_DECIMAL, 5, 2)}) == 4
    ct = d.encrypt_int(KIND_INTEGER, 5)
    with pytest.raises(InvalidCiphertext):
        d.decrypt_int(KIND_TEMPORAL, ct)
    with pytest.raises(InvalidCiphertext):
        d.decrypt_int(KIND_DECIMAL, d.encrypt_int(KIND_DECIMAL, 5, 2), 3)


def test_Det_int_refuses_wrong_key_and_tampering() -> None:
    ct = Det(KEY).encrypt_int(KIND_INTEGER, 42)
    with pytest.raises(InvalidCiphertext):
        Det(os.urandom(64)).decrypt_int(KIND_INTEGER, ct)
    with pytest.raises(InvalidCiphertext):
        Det(KEY).decrypt_int(KIND_INTEGER, bytes([ct[0] ^ 1]) + ct[1:])
    with pytest.raises(InvalidCiphertext):
        Det(KEY).decrypt_int(KIND_INTEGER, ct[:15])
    with pytest.raises(ValueError):
        Det(KEY).encrypt_int(KIND_INTEGER, 2**71)


@pytest.mark.parametrize("data", [b"", b"a", "😀".encode(), os.urandom(1000)])
def test_Det_bytes_round_trip(data: bytes) -> None:
    d = Det(KEY)
    ct = d.encrypt_bytes(data)
    assert ct[0] == 0x01 and len(ct) == 17 + len(data)
    assert d.encrypt_bytes(data) == ct and d.decrypt_bytes(ct) == data


def test_Det_bytes_refuses_tampering() -> None:
    d = Det(KEY)
    ct = d.encrypt_bytes(b"hello")
    for bad in (ct[:-1], b"\x02" + ct[1:], ct[:5] + bytes([ct[5] ^ 4]) + ct[6:], ct[:16]):
        with pytest.raises(InvalidCiphertext):
            d.decrypt_bytes(bad)
    with pytest.raises(InvalidCiphertext):
        Det(os.urandom(64)).decrypt_bytes(ct)


def test_Det_decimal_forms() -> None:
    d = Det(KEY)
    small, wide = d.encrypt_decimal(-(2**71), 30), d.encrypt_decimal(2**71, 30)
    assert len(small) == 16 and len(wide) == 46
    assert d.decrypt_decimal(small, 30) == -(2**71) and d.decrypt_decimal(wide, 30) == 2**71
    assert d.decrypt_decimal(d.encrypt_decimal(-(10**65) + 1, 30), 30) == -(10**65) + 1
    with pytest.raises(InvalidCiphertext):
        d.decrypt_decimal(wide, 29)  # the scale is bound into the ciphertext
    with pytest.raises(InvalidCiphertext):
        d.decrypt_decimal(d.encrypt_bytes(bytes(29)), 30)  # text DET is not a decimal
