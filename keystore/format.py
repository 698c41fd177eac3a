"""Byte layout of a keystore file (docs/keystore-format.md): pure encode/decode, no crypto, no I/O.

Every field read from disk is bounds-checked here, before any of it reaches argon2 or AES:
a file that asks for 1 TiB of argon2 memory is refused as corrupt, not obeyed.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

from keystore.errors import CorruptKeystore

MAGIC = b"\x89CDBKEY\n"  # PNG-style: the high byte and the newline catch text-mode mangling
FORMAT_VERSION = 1
ARGON2ID = 1  # kdf id; the only one defined

DEPLOYMENT_ID_BYTES = 16
KEY_CHECK_BYTES = 32
SALT_BYTES = 16
NONCE_BYTES = 12
TAG_BYTES = 16
WRAPPED_BYTES = 32 + TAG_BYTES
CHECKSUM_BYTES = 32

# magic, version, flags, deployment id, generation, metadata version, key check, slot count
_HEADER = struct.Struct(">8sHH16sQQ32sH")
HEADER_BYTES = _HEADER.size
# kdf id, memory KiB, time cost, parallelism, salt, nonce, wrapped master key
_SLOT_TAIL = struct.Struct(">BIIB16s12s48s")
_SLOT_WRAPPED_AT = _SLOT_TAIL.size - WRAPPED_BYTES
_META_HEAD = struct.Struct(">12sI")  # nonce, ciphertext length (tag included)

MAX_PRINCIPAL_BYTES = 255
MAX_SLOTS = 1024
# Far above any schema's metadata; bounds what a damaged file can make us read.
MAX_METADATA_BYTES = 64 << 20
MAX_FILE_BYTES = (
    HEADER_BYTES + MAX_SLOTS * (1 + MAX_PRINCIPAL_BYTES + _SLOT_TAIL.size)
    + _META_HEAD.size + MAX_METADATA_BYTES + CHECKSUM_BYTES
)

# argon2 bounds checked on every read and write. The ceilings keep a hostile or damaged file
# from making an unlock allocate gigabytes or spin for minutes; the floors are argon2's own.
MIN_MEMORY_KIB, MAX_MEMORY_KIB = 8, 1 << 20  # 1 GiB
MIN_TIME_COST, MAX_TIME_COST = 1, 16
MIN_PARALLELISM, MAX_PARALLELISM = 1, 16


@dataclass(frozen=True)
class KdfParams:
    """argon2id cost parameters, stored per slot. Default: RFC 9106's second recommended
    option (64 MiB, t=3, p=4), about 0.13-0.16 s on the development machine."""

    memory_kib: int = 64 * 1024
    time_cost: int = 3
    parallelism: int = 4

    def __post_init__(self) -> None:
        problem = self.problem()
        if problem:
            raise ValueError(problem)

    def problem(self) -> str | None:
        if not MIN_PARALLELISM <= self.parallelism <= MAX_PARALLELISM:
            return f"argon2 parallelism {self.parallelism} outside [1, {MAX_PARALLELISM}]"
        if not max(MIN_MEMORY_KIB, 8 * self.parallelism) <= self.memory_kib <= MAX_MEMORY_KIB:
            return f"argon2 memory {self.memory_kib} KiB outside [8*p, {MAX_MEMORY_KIB}]"
        if not MIN_TIME_COST <= self.time_cost <= MAX_TIME_COST:
            return f"argon2 time cost {self.time_cost} outside [1, {MAX_TIME_COST}]"
        return None


def check_principal(principal: str) -> bytes:
    """A principal's stored form: UTF-8, 1..255 bytes, no control characters."""
    if not isinstance(principal, str) or not principal:
        raise ValueError("principal must be a non-empty string")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in principal):
        raise ValueError("principal contains control characters")
    raw = principal.encode("utf-8")
    if len(raw) > MAX_PRINCIPAL_BYTES:
        raise ValueError(f"principal longer than {MAX_PRINCIPAL_BYTES} bytes")
    return raw


@dataclass(frozen=True)
class Slot:
    """The master key wrapped under one principal's password-derived KEK."""

    principal: str
    kdf: KdfParams
    salt: bytes
    nonce: bytes
    wrapped: bytes = field(repr=False)

    def header_bytes(self) -> bytes:
        """Everything but the wrapped key: the slot's part of its GCM associated data."""
        name = check_principal(self.principal)
        tail = _SLOT_TAIL.pack(
            ARGON2ID, self.kdf.memory_kib, self.kdf.time_cost, self.kdf.parallelism,
            self.salt, self.nonce, bytes(WRAPPED_BYTES),
        )
        return bytes([len(name)]) + name + tail[:_SLOT_WRAPPED_AT]

    def encode(self) -> bytes:
        if len(self.wrapped) != WRAPPED_BYTES:
            raise ValueError("wrapped key has the wrong length")
        return self.header_bytes() + self.wrapped


@dataclass(frozen=True)
class Header:
    deployment_id: bytes
    generation: int  # +1 on every write: the cheap "did anything change" check
    metadata_version: int  # +1 on every metadata save: the compare-and-swap counter
    key_check: bytes  # HKDF(master, "key check"): tells a wrong master key from a damaged file
    slot_count: int

    def encode(self) -> bytes:
        return _HEADER.pack(
            MAGIC, FORMAT_VERSION, 0, self.deployment_id, self.generation,
            self.metadata_version, self.key_check, self.slot_count,
        )


@dataclass(frozen=True)
class KeystoreFile:
    header: Header
    slots: tuple[Slot, ...]
    metadata_nonce: bytes
    metadata_ct: bytes = field(repr=False)

    def metadata_aad(self) -> bytes:
        """Header, slot table and metadata framing: the metadata's GCM tag authenticates all
        of the file that precedes the ciphertext (the trailer is an unkeyed checksum)."""
        return metadata_aad(self.header, self.slots, self.metadata_nonce, len(self.metadata_ct))

    def encode(self) -> bytes:
        body = self.metadata_aad() + self.metadata_ct
        return body + hashlib.sha256(body).digest()

    def find(self, principal: str) -> Slot | None:
        for slot in self.slots:
            if slot.principal == principal:
                return slot
        return None


def metadata_aad(header: Header, slots: tuple[Slot, ...], nonce: bytes, ct_len: int) -> bytes:
    if header.slot_count != len(slots):
        raise ValueError("slot count does not match the slot table")
    return (
        header.encode() + b"".join(s.encode() for s in slots) + _META_HEAD.pack(nonce, ct_len)
    )


def slot_aad(deployment_id: bytes, slot: Slot) -> bytes:
    """Binds a wrapped key to its format, deployment, principal, KDF parameters and salt."""
    return MAGIC + struct.pack(">H", FORMAT_VERSION) + deployment_id + slot.header_bytes()


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise CorruptKeystore(f"truncated: file ends inside the {what}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


def decode_header(data: bytes) -> Header:
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise CorruptKeystore("not a cryptdb keystore (bad magic)")
    if len(data) < HEADER_BYTES:
        raise CorruptKeystore("truncated: file ends inside the header")
    magic, version, flags, dep, gen, mver, kcv, count = _HEADER.unpack_from(data)
    if version != FORMAT_VERSION:
        raise CorruptKeystore(f"unsupported keystore format version {version}")
    if flags != 0:
        raise CorruptKeystore(f"unknown flags {flags:#06x}")
    if count < 1 or count > MAX_SLOTS:
        raise CorruptKeystore(f"slot count {count} outside [1, {MAX_SLOTS}]")
    return Header(dep, gen, mver, kcv, count)


def decode(data: bytes) -> KeystoreFile:
    """Parse and bounds-check a whole file; raise CorruptKeystore with the reason."""
    header = decode_header(data)
    if len(data) > MAX_FILE_BYTES:
        raise CorruptKeystore("file larger than any keystore can be")
    if len(data) < HEADER_BYTES + CHECKSUM_BYTES:
        raise CorruptKeystore("truncated: no room for the checksum")
    body, checksum = data[:-CHECKSUM_BYTES], data[-CHECKSUM_BYTES:]
    if hashlib.sha256(body).digest() != checksum:
        raise CorruptKeystore("checksum mismatch: the file is damaged or truncated")
    r = _Reader(body)
    r.take(HEADER_BYTES, "header")
    slots = []
    seen: set[str] = set()
    for i in range(header.slot_count):
        n = r.take(1, f"slot {i}")[0]
        try:
            principal = r.take(n, f"slot {i}").decode("utf-8")
            check_principal(principal)
        except (UnicodeDecodeError, ValueError) as e:
            raise CorruptKeystore(f"slot {i}: bad principal name") from e
        kdf_id, mem, t, p, salt, nonce, wrapped = _SLOT_TAIL.unpack(
            r.take(_SLOT_TAIL.size, f"slot {i}")
        )
        if kdf_id != ARGON2ID:
            raise CorruptKeystore(f"slot {i}: unknown kdf id {kdf_id}")
        try:
            kdf = KdfParams(mem, t, p)
        except ValueError as e:
            raise CorruptKeystore(f"slot {i}: {e}") from None
        if principal in seen:
            raise CorruptKeystore(f"slot {i}: duplicate principal")
        seen.add(principal)
        slots.append(Slot(principal, kdf, salt, nonce, wrapped))
    nonce, ct_len = _META_HEAD.unpack(r.take(_META_HEAD.size, "metadata header"))
    if not TAG_BYTES <= ct_len <= MAX_METADATA_BYTES + TAG_BYTES:
        raise CorruptKeystore(f"metadata length {ct_len} out of bounds")
    ct = r.take(ct_len, "metadata")
    if r.pos != len(body):
        raise CorruptKeystore("trailing bytes after the metadata")
    return KeystoreFile(header, tuple(slots), nonce, ct)
