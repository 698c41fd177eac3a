"""onion.rnd: AES-256-CTR with the IV as the full 128-bit counter, like EVP_aes_256_ctr."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from onion.rnd import Rnd, rnd_decrypt, rnd_encrypt


def pyca_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    ctx = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return ctx.update(data) + ctx.finalize()


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 100, 511, 512, 513, 4096])
@pytest.mark.parametrize("iv", [b"\xff" * 16, b"\x00" * 8 + b"\xff" * 8, None])
def test_Rnd_matches_openssl_ctr(n: int, iv: bytes | None) -> None:
    key, iv = os.urandom(32), iv or os.urandom(16)
    data = os.urandom(n)
    ct = Rnd(key).encrypt(iv, data)
    assert ct == pyca_ctr(key, iv, data) == rnd_encrypt(key, iv, data)
    assert len(ct) == n
    assert Rnd(key).decrypt(iv, ct) == data == rnd_decrypt(key, iv, ct)


def test_Rnd_keys_and_ivs_matter() -> None:
    key, iv, data = os.urandom(32), os.urandom(16), b"sixteen bytes!!!"
    c = Rnd(key).encrypt(iv, data)
    assert c != Rnd(key).encrypt(os.urandom(16), data)
    assert c != Rnd(os.urandom(32)).encrypt(iv, data)


def test_Rnd_checks_lengths() -> None:
    with pytest.raises(ValueError):
        Rnd(os.urandom(16))
    with pytest.raises(ValueError):
        Rnd(os.urandom(32)).encrypt(os.urandom(15), b"x")
