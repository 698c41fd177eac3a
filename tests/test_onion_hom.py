"""onion.hom: Paillier encryption, sums with negatives, increments, key (de)serialization."""

from __future__ import annotations

import json
import random
from pathlib import Path

import gmpy2
import pytest

from onion.errors import InvalidCiphertext
from onion.hom import ALPHA_BITS, PaillierPrivateKey, PaillierPublicKey

VECTORS = Path(__file__).resolve().parent / "vectors" / "onion" / "hom.json"


@pytest.fixture(scope="module")
def key() -> PaillierPrivateKey:
    # The vector key: generating a fresh 2048-bit key per test run costs ~0.5 s.
    return PaillierPrivateKey.from_bytes(
        bytes.fromhex(json.loads(VECTORS.read_text())["private_key"]))


EDGES = [0, 1, -1, 2**63 - 1, -(2**63), 2**64 - 1, 10**65 - 1, -(10**65 - 1)]


@pytest.mark.parametrize("m", EDGES)
def test_PaillierPrivateKey_round_trip(key: PaillierPrivateKey, m: int) -> None:
    ct = key.encrypt(m)
    assert len(ct) == key.public_key.width == 512
    assert key.decrypt(ct) == m
    assert key.encrypt(m) != ct  # randomized


def test_plaintext_range(key: PaillierPrivateKey) -> None:
    half = int(key.public_key.n) // 2
    assert key.decrypt(key.encrypt(half)) == half
    assert key.decrypt(key.encrypt(-half)) == -half
    with pytest.raises(ValueError):
        key.encrypt(half + 1)


def test_sum_with_negatives(key: PaillierPrivateKey) -> None:
    rng = random.Random(1)
    values = [rng.randrange(-(10**15), 10**15) for _ in range(300)] + EDGES[:6]
    cts = [key.encrypt(v) for v in values]
    assert key.decrypt(key.public_key.sum(cts)) == sum(values)
    assert key.decrypt(key.public_key.sum([])) == 0


def test_increment_in_place(key: PaillierPrivateKey) -> None:
    pub = key.public_key
    c = key.encrypt(10)
    for k in (1, -3, 2**63, -(2**63)):
        c = pub.add(c, key.encrypt(k))
    assert key.decrypt(c) == 10 + 1 - 3


def test_public_encryption_interoperates(key: PaillierPrivateKey) -> None:
    pub = PaillierPublicKey(int(key.public_key.n))
    c = pub.encrypt_public(-42)
    assert key.decrypt(c) == -42
    assert key.decrypt(pub.add(c, key.encrypt(2))) == -40


def test_fixed_randomness_matches_textbook(key: PaillierPrivateKey) -> None:
    """Enc(m) with exponent a equals (1 + m n) * (h**a)**n mod n**2, and a uses ALPHA_BITS."""
    n, n2 = int(key.public_key.n), int(key.public_key.n2)
    a = (1 << (ALPHA_BITS - 1)) | 12345
    ct = key._encrypt_from_parts(-5, a)
    r = pow(int(key.h), a, n)
    assert int.from_bytes(ct, "big") == (1 + (n - 5) * n) * pow(r, n, n2) % n2
    with pytest.raises(ValueError):
        key._encrypt_from_parts(1, 1 << ALPHA_BITS)


def test_invalid_ciphertexts(key: PaillierPrivateKey) -> None:
    pub = key.public_key
    w = pub.width
    good = key.encrypt(1)
    for bad in (good[:-1], good + b"\0", bytes(w), int(pub.n2).to_bytes(w, "big"),
                (int(key.p) * 7).to_bytes(w, "big")):
        with pytest.raises(InvalidCiphertext):
            key.decrypt(bad)
    with pytest.raises(InvalidCiphertext):
        pub.add(good, good[1:])


def test_key_bytes_round_trip(key: PaillierPrivateKey) -> None:
    data = key.to_bytes()
    assert data[0] == 0x01 and len(data) == 3 + 4 * 128
    again = PaillierPrivateKey.from_bytes(data)
    assert again.to_bytes() == data
    assert again.decrypt(key.encrypt(-7)) == -7
    for bad in (b"", b"\x02" + data[1:], data[:-1], data[:3] + bytes(len(data) - 3)):
        with pytest.raises(ValueError):
            PaillierPrivateKey.from_bytes(bad)


def test_generate() -> None:
    k = PaillierPrivateKey.generate()
    assert int(k.public_key.n).bit_length() == 2048
    assert gmpy2.is_prime(k.p) and gmpy2.is_prime(k.q) and k.p != k.q
    assert k.decrypt(k.encrypt(-123)) == -123
    with pytest.raises(ValueError):
        PaillierPrivateKey.generate(1024)
