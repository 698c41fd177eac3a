"""Password-wrapped keystore: master key slots per principal, encrypted metadata, escrow.

The proxy's entry points (docs/keystore-format.md has the file format and the rationale):

    ks = Keystore(path, cache=UnlockCache())
    master = ks.initialize(principal, password)      # first key presented to a new deployment
    master = ks.unlock(principal, password)          # AccessDenied if wrong or unknown
    ks.rotate(principal, old_password, new_password)
    version, meta = ks.load_metadata(master)
    version = ks.save_metadata(master, meta, expected_version=version)   # MetadataConflict
    if ks.refresh(): ...                              # another process wrote; reload metadata
"""

from keystore.cache import UnlockCache
from keystore.crypto import MasterKey
from keystore.errors import (
    AccessDenied,
    CorruptKeystore,
    EscrowError,
    InsecurePermissions,
    KeystoreBusy,
    KeystoreError,
    KeystoreExists,
    KeystoreMissing,
    MetadataConflict,
    PrincipalExists,
    UnknownPrincipal,
)
from keystore.format import KdfParams
from keystore.store import DEFAULT_KDF, Keystore

__all__ = [
    "DEFAULT_KDF",
    "AccessDenied",
    "CorruptKeystore",
    "EscrowError",
    "InsecurePermissions",
    "KdfParams",
    "Keystore",
    "KeystoreBusy",
    "KeystoreError",
    "KeystoreExists",
    "KeystoreMissing",
    "MasterKey",
    "MetadataConflict",
    "PrincipalExists",
    "UnknownPrincipal",
    "UnlockCache",
]
