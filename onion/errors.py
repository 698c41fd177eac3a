"""The one error every onion decryption raises, whatever check failed (Fernet's InvalidToken)."""

from __future__ import annotations


class InvalidCiphertext(Exception):
    """A ciphertext did not decrypt: wrong key, wrong IV, damaged or forged bytes.

    Deliberately carries no detail: which check failed is itself information."""

    def __init__(self) -> None:
        super().__init__("invalid ciphertext")
