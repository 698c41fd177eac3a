"""Key material: the master key, slot wrapping (argon2id + AES-256-GCM), metadata sealing.

Every function takes its randomness (salts, nonces) as arguments with a fresh default, so the
format vectors can be rebuilt byte for byte (pyca's `_encrypt_from_parts` pattern).
"""

from __future__ import annotations

import hmac
import json
import os
from typing import Any

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from keystore.errors import AccessDenied, CorruptKeystore
from keystore.format import (
    NONCE_BYTES,
    SALT_BYTES,
    Header,
    KdfParams,
    KeystoreFile,
    Slot,
    metadata_aad,
    slot_aad,
)

MASTER_KEY_BYTES = 32
# HKDF-SHA256 labels (info), salt = the deployment id. Documented in docs/keystore-format.md.
LABEL_METADATA = b"cryptdb keystore v1 metadata key"
LABEL_KEY_CHECK = b"cryptdb keystore v1 key check"

Password = str | bytes


class MasterKey:
    """The deployment's 256-bit root secret. Never printed; compared in constant time."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) != MASTER_KEY_BYTES:
            raise ValueError("a master key is 32 bytes")
        self._key = key

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(os.urandom(MASTER_KEY_BYTES))

    @property
    def raw(self) -> bytes:
        """The key bytes, for onion/ key derivation. Do not log or store them."""
        return self._key

    def __repr__(self) -> str:
        return "MasterKey(<secret>)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MasterKey) and hmac.compare_digest(self._key, other._key)

    __hash__ = None  # type: ignore[assignment]  # keys are not dict keys: no hashing of secrets


def password_bytes(password: Password) -> bytes:
    """Passwords are used exactly as the client sends them: UTF-8, no normalization."""
    return password.encode("utf-8") if isinstance(password, str) else bytes(password)


def derive(master: MasterKey, deployment_id: bytes, label: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=deployment_id, info=label).derive(master.raw)


def key_check(master: MasterKey, deployment_id: bytes) -> bytes:
    return derive(master, deployment_id, LABEL_KEY_CHECK)


def derive_kek(password: Password, salt: bytes, kdf: KdfParams) -> bytes:
    return hash_secret_raw(
        password_bytes(password), salt, time_cost=kdf.time_cost, memory_cost=kdf.memory_kib,
        parallelism=kdf.parallelism, hash_len=32, type=Type.ID,
    )


def make_slot(
    principal: str, password: Password, master: MasterKey, deployment_id: bytes,
    kdf: KdfParams, *, salt: bytes | None = None, nonce: bytes | None = None,
) -> Slot:
    if not password_bytes(password):
        raise ValueError("empty password")
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
    draft = Slot(principal, kdf, salt, nonce, b"")
    kek = derive_kek(password, salt, kdf)
    wrapped = AESGCM(kek).encrypt(nonce, master.raw, slot_aad(deployment_id, draft))
    return Slot(principal, kdf, salt, nonce, wrapped)


def unwrap_slot(slot: Slot, password: Password, deployment_id: bytes) -> MasterKey:
    """The master key, or AccessDenied (wrong password, or a slot altered in any way)."""
    kek = derive_kek(password, slot.salt, slot.kdf)
    aad = slot_aad(deployment_id, slot)
    try:
        return MasterKey(AESGCM(kek).decrypt(slot.nonce, slot.wrapped, aad))
    except InvalidTag:
        raise AccessDenied from None


def dummy_unwrap(kdf: KdfParams, password: Password) -> None:
    """The work of a failed unwrap, for principals without a slot (comparable timing)."""
    kek = derive_kek(password, bytes(SALT_BYTES), kdf)
    try:
        AESGCM(kek).decrypt(bytes(NONCE_BYTES), bytes(48), b"")
    except InvalidTag:
        pass


def encode_metadata(metadata: dict[str, Any]) -> bytes:
    if not isinstance(metadata, dict):
        raise TypeError("metadata must be a dict")
    # Canonical JSON: equal dicts give equal plaintexts (vectors, and no key-order noise).
    return json.dumps(
        metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def seal(
    master: MasterKey, deployment_id: bytes, *, generation: int, metadata_version: int,
    slots: tuple[Slot, ...], metadata: bytes, nonce: bytes | None = None,
) -> KeystoreFile:
    """A complete file: the metadata encrypted with everything before it as associated data."""
    nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
    header = Header(
        deployment_id, generation, metadata_version, key_check(master, deployment_id), len(slots)
    )
    aad = metadata_aad(header, slots, nonce, len(metadata) + 16)
    ct = AESGCM(derive(master, deployment_id, LABEL_METADATA)).encrypt(nonce, metadata, aad)
    return KeystoreFile(header, slots, nonce, ct)


def check_master(file: KeystoreFile, master: MasterKey) -> None:
    """AccessDenied unless `master` is this keystore's master key."""
    expected = key_check(master, file.header.deployment_id)
    if not hmac.compare_digest(expected, file.header.key_check):
        raise AccessDenied


def open_metadata(file: KeystoreFile, master: MasterKey) -> bytes:
    """Authenticate the whole file under `master` and return the metadata plaintext."""
    check_master(file, master)
    key = derive(master, file.header.deployment_id, LABEL_METADATA)
    try:
        return AESGCM(key).decrypt(file.metadata_nonce, file.metadata_ct, file.metadata_aad())
    except InvalidTag:
        raise CorruptKeystore(
            "integrity check failed: the file was altered by someone without the master key"
        ) from None


def decode_metadata(plaintext: bytes) -> dict[str, Any]:
    try:
        value = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        # Authenticated but unparsable: only a writer holding the master key could do this.
        raise CorruptKeystore("metadata is not valid JSON") from e
    if not isinstance(value, dict):
        raise CorruptKeystore("metadata is not a JSON object")
    return value
