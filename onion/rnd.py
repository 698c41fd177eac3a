"""RND layer: AES-256-CTR under a per-row 16-byte IV (the outer layer of the Eq and Ord onions).

RND(k, iv, x) = AES-256-CTR(k, iv, x): the IV is the whole initial 128-bit big-endian counter
block and the counter wraps modulo 2**128, exactly as OpenSSL's EVP_aes_256_ctr (which the
peeling UDF uses). The output has the length of x. CTR is its own inverse, so peeling inside
MariaDB yields exactly the inner DET or OPE bytes.

Security: IND-CPA as long as a (key, IV) pair never encrypts two different values; the proxy
must draw a fresh IV whenever a value under that key changes. There is no integrity here
(CTR is malleable); the inner layers check what they decrypt.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

KEY_SIZE = 32
IV_SIZE = 16
_MASK = (1 << 128) - 1
# Below this size the keystream is built from a reused ECB context (~1 us); above it a fresh
# CTR context (~10 us to create) wins. Both give identical bytes.
_ECB_MAX = 512


class Rnd:
    """RND under one layer key; reuse one instance per key (it caches the AES context)."""

    __slots__ = ("_key", "_ecb")

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError("RND key must be 32 bytes")
        self._key = bytes(key)
        self._ecb = Cipher(algorithms.AES(self._key), modes.ECB()).encryptor()  # noqa: S305

    def encrypt(self, iv: bytes, data: bytes) -> bytes:
        if len(iv) != IV_SIZE:
            raise ValueError("RND IV must be 16 bytes")
        n = len(data)
        if n == 0:
            return b""
        if n > _ECB_MAX:
            ctx = Cipher(algorithms.AES(self._key), modes.CTR(iv)).encryptor()
            return ctx.update(data) + ctx.finalize()
        ctr = int.from_bytes(iv, "big")
        blocks = b"".join(
            ((ctr + i) & _MASK).to_bytes(16, "big") for i in range((n + 15) // 16)
        )
        stream = self._ecb.update(blocks)
        x = int.from_bytes(data, "big") ^ int.from_bytes(stream[:n], "big")
        return x.to_bytes(n, "big")

    # CTR: decryption is the same operation.
    decrypt = encrypt


def rnd_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    """One-shot RND (builds the AES context each call; prefer a cached `Rnd`)."""
    return Rnd(key).encrypt(iv, data)


rnd_decrypt = rnd_encrypt
