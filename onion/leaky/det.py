"""DET layer (Eq onion): deterministic encryption. Equal plaintexts under one key give equal
ciphertexts, which is the point (the server can test equality, GROUP BY, join) and the leak.

Two formats under one 64-byte key, chosen by value (so equal values always take the same one):

* Integer-like values (INT family, DATE/DATETIME, DECIMAL whose scaled value fits 9 bytes)
  are one AES-256 block (a PRP), 16 bytes:
      block = 0xD1 | kind | scale | 00 00 00 00 | value (9-byte big-endian two's complement)
  kind: 0x01 integer (signed and unsigned share it, so INT joins BIGINT UNSIGNED on equal
  numbers), 0x02 temporal (microseconds; DATE equals the DATETIME of its midnight), 0x03
  decimal (scaled at `scale`). The block key is HMAC-SHA256(det_key, "cryptdb-onion/v1/det/
  block"), so it never doubles as an AES-SIV subkey. The 7 constant bytes are checked on
  decryption: a forged or wrong-key block passes with probability 2**-56.
* Byte strings (text as UTF-8, and decimals too wide for the block) are
      0x01 || AES-SIV(det_key, plaintext)      (RFC 5297: 16-byte SIV tag, then CTR body)
  with no associated data for text and the associated data "cryptdb-onion/v1/det/decimal"
  for wide decimals (the wide decimal plaintext is scale || 28-byte two's complement).
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from onion.errors import InvalidCiphertext

KEY_SIZE = 64
BLOCK_MARKER = 0xD1
BYTES_VERSION = 0x01
KIND_INTEGER = 0x01
KIND_TEMPORAL = 0x02
KIND_DECIMAL = 0x03
_BLOCK_LABEL = b"cryptdb-onion/v1/det/block"
_WIDE_DECIMAL_AD = [b"cryptdb-onion/v1/det/decimal"]
_VALUE_BYTES = 9
_WIDE_BYTES = 28  # two's complement of |m| < 10**65 < 2**216 needs 217 bits
_VMIN, _VMAX = -(1 << (8 * _VALUE_BYTES - 1)), (1 << (8 * _VALUE_BYTES - 1)) - 1


class Det:
    """DET under one 64-byte key; reuse one instance per key (it caches AES contexts)."""

    __slots__ = ("_enc", "_dec", "_siv")

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError("DET key must be 64 bytes")
        block_key = hmac.digest(key, _BLOCK_LABEL, hashlib.sha256)
        aes = algorithms.AES(block_key)
        # ECB only ever sees exactly one block here: it is the raw PRP, not a mode.
        self._enc = Cipher(aes, modes.ECB()).encryptor()  # noqa: S305
        self._dec = Cipher(aes, modes.ECB()).decryptor()  # noqa: S305
        self._siv = AESSIV(key)

    # -- integer-like values ----------------------------------------------------------------

    @staticmethod
    def fits_block(value: int) -> bool:
        return _VMIN <= value <= _VMAX

    def encrypt_int(self, kind: int, value: int, scale: int = 0) -> bytes:
        if not self.fits_block(value) or kind not in (1, 2, 3) or not 0 <= scale <= 255:
            raise ValueError("value does not fit the DET block")
        block = bytes((BLOCK_MARKER, kind, scale, 0, 0, 0, 0)) + value.to_bytes(
            _VALUE_BYTES, "big", signed=True
        )
        return self._enc.update(block)

    def decrypt_int(self, kind: int, ct: bytes, scale: int = 0) -> int:
        if len(ct) != 16:
            raise InvalidCiphertext()
        block = self._dec.update(ct)
        if block[:7] != bytes((BLOCK_MARKER, kind, scale, 0, 0, 0, 0)):
            raise InvalidCiphertext()
        return int.from_bytes(block[7:], "big", signed=True)

    # -- byte strings -----------------------------------------------------------------------

    def encrypt_bytes(self, data: bytes) -> bytes:
        return bytes((BYTES_VERSION,)) + self._siv.encrypt(data, None)

    def decrypt_bytes(self, ct: bytes) -> bytes:
        if len(ct) < 17 or ct[0] != BYTES_VERSION:
            raise InvalidCiphertext()
        try:
            return self._siv.decrypt(ct[1:], None)
        except InvalidTag:
            raise InvalidCiphertext() from None

    # -- decimals of any width --------------------------------------------------------------

    def encrypt_decimal(self, scaled: int, scale: int) -> bytes:
        """16-byte block when the scaled value fits 9 bytes, else the SIV form."""
        if self.fits_block(scaled):
            return self.encrypt_int(KIND_DECIMAL, scaled, scale)
        body = bytes((scale,)) + scaled.to_bytes(_WIDE_BYTES, "big", signed=True)
        return bytes((BYTES_VERSION,)) + self._siv.encrypt(body, _WIDE_DECIMAL_AD)

    def decrypt_decimal(self, ct: bytes, scale: int) -> int:
        if len(ct) == 16:
            return self.decrypt_int(KIND_DECIMAL, ct, scale)
        if len(ct) != 1 + 16 + 1 + _WIDE_BYTES or ct[0] != BYTES_VERSION:
            raise InvalidCiphertext()
        try:
            body = self._siv.decrypt(ct[1:], _WIDE_DECIMAL_AD)
        except InvalidTag:
            raise InvalidCiphertext() from None
        value = int.from_bytes(body[1:], "big", signed=True)
        if body[0] != scale or self.fits_block(value):  # canonical form only
            raise InvalidCiphertext()
        return value
