"""Obtaining the client's cleartext password from stock clients.

The proxy needs the password itself: it logs into the backend as the client, and (with the
keystore) unwraps the client's key slot. `caching_sha2_password` is offered and always asks
for full authentication, which makes a client send the password over TLS, or RSA-OAEP
encrypted to the proxy's public key without TLS. `mysql_clear_password` is accepted when a
client chooses it.
"""

from __future__ import annotations

import secrets

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

CACHING_SHA2 = "caching_sha2_password"
CLEAR_PASSWORD = "mysql_clear_password"  # noqa: S105 - a plugin name
REQUEST_PUBLIC_KEY = b"\x02"
PERFORM_FULL_AUTH = b"\x04"


def make_nonce() -> bytes:
    """20 bytes of challenge; NUL and '$' excluded because some clients stop at them."""
    alphabet = bytes(b for b in range(1, 128) if b != ord("$"))
    return bytes(secrets.choice(alphabet) for _ in range(20))


class RsaKeyPair:
    """The key clients encrypt their password to when there is no TLS (per proxy process)."""

    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ciphertext_length = self._key.key_size // 8
        self.public_pem = self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def decrypt_password(self, ciphertext: bytes, nonce: bytes) -> bytes:
        """MySQL's scheme: RSA-OAEP(SHA-1) over (password + NUL) XOR the repeated nonce."""
        plain = self._key.decrypt(
            ciphertext,
            padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None),  # noqa: S303
        )
        clear = bytes(b ^ nonce[i % len(nonce)] for i, b in enumerate(plain))
        return clear.rstrip(b"\x00")


def cleartext_from_packet(data: bytes) -> bytes:
    """A password sent in the clear (over TLS, or by mysql_clear_password): NUL-terminated."""
    end = data.find(b"\x00")
    return data if end < 0 else data[:end]
