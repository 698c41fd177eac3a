"""Keystore errors. Messages name files and reasons, never secrets.

`AccessDenied` is deliberately one opaque error: a wrong password, an unknown principal and a
master key that does not belong to this keystore all look the same to the caller (and so to a
client of the proxy), like Fernet's single `InvalidToken`.
"""

from __future__ import annotations

from keystore.files import InsecurePermissions


class KeystoreError(Exception):
    """Base class of every error this package raises on purpose."""


class AccessDenied(KeystoreError):
    """Wrong password, unknown principal, or a key that does not open this keystore."""

    def __init__(self) -> None:
        super().__init__("access denied")


class CorruptKeystore(KeystoreError):
    """The file is not a keystore we can read: damaged, truncated, tampered with, or too new."""


class KeystoreExists(KeystoreError):
    """`initialize` on a path that already holds a keystore."""


class KeystoreMissing(KeystoreError):
    """An operation that needs a keystore on a path that holds none."""


class MetadataConflict(KeystoreError):
    """Compare-and-swap failure: another writer saved metadata since `expected_version`."""

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(
            f"metadata version is {actual}, not {expected}: another proxy wrote it; "
            "reload and retry"
        )
        self.expected = expected
        self.actual = actual


class KeystoreBusy(KeystoreError):
    """Another process held the writers' lock for longer than the timeout."""


class PrincipalExists(KeystoreError):
    """`add_user` for a principal that already has a slot."""


class UnknownPrincipal(KeystoreError):
    """`remove_user` of a principal without a slot (callers already hold the master key)."""


class EscrowError(KeystoreError):
    """An escrow file or identity that cannot be used (wrong identity, other deployment...)."""


__all__ = [
    "AccessDenied",
    "CorruptKeystore",
    "EscrowError",
    "InsecurePermissions",
    "KeystoreBusy",
    "KeystoreError",
    "KeystoreExists",
    "KeystoreMissing",
    "MetadataConflict",
    "PrincipalExists",
    "UnknownPrincipal",
]
